//! The HTTP probe: one GET or HEAD over TCP, TLS, a proxy (absolute form) or a CONNECT tunnel
//! (then TLS), with hyper's HTTP/1.1 client. The status is held to the target's accept list;
//! the body is read only for Azure Firewall's status 470 (at most 4 KiB, before the deadline),
//! whose text names the deny (see `net::firewall`).

use std::time::Instant as Clock;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};

use super::Dest;
use super::route;
use super::{ErrorKind, Evidence, Phase, ProbeEnv, ProbeError};
use crate::catalog::{Method, StatusMatch, Web};
use crate::net::proxy::{ProxyUrl, Scheme};
use crate::net::{USER_AGENT, dial, firewall};
use crate::outcome::FirewallEvidence;

/// Cap on the bytes hyper buffers while reading a response head.
const MAX_HEAD: usize = 64 * 1024;

/// What an HTTP check asks for and what answer proves the path.
pub struct Ask<'a> {
    pub web: &'a Web,
    pub method: Method,
    pub accept: &'a [StatusMatch],
}

pub async fn probe(
    dest: Dest<'_>,
    ask: Ask<'_>,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let scheme = if ask.web.tls {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let opened = route::open_web(dest, scheme, env, ev).await?;
    let url = url(dest, ask.web);
    let mut builder = Request::builder()
        .method(ask.method.as_str())
        .header(hyper::header::HOST, host_header(dest, ask.web))
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .header(hyper::header::ACCEPT, "*/*")
        .header(hyper::header::CONNECTION, "close");
    builder = match &opened.forward_proxy {
        // Through a forward proxy a plain request names the whole URL.
        Some(proxy) => match proxy.authorization() {
            Some(auth) => builder
                .uri(url.as_str())
                .header(hyper::header::PROXY_AUTHORIZATION, auth),
            None => builder.uri(url.as_str()),
        },
        None => builder.uri(ask.web.path.as_str()),
    };
    let request = builder.body(Empty::<Bytes>::new()).map_err(|e| {
        ProbeError::new(
            ErrorKind::Io,
            format!("building the request for {url}: {e}"),
        )
    })?;
    let head = exchange(opened.stream, request, opened.deadline, ev).await?;
    judge(&ask, &url, head, opened.forward_proxy.as_ref(), ev)
}

/// The URL the probe asks for, for messages and the absolute form.
fn url(dest: Dest, web: &Web) -> String {
    let scheme = if web.tls { "https" } else { "http" };
    format!("{scheme}://{}{}", host_header(dest, web), web.path)
}

/// `host` or `host:port` when the port is not the scheme's default; IPv6 in brackets.
fn host_header(dest: Dest, web: &Web) -> String {
    let default = if web.tls { 443 } else { 80 };
    match dest.port == default {
        true => crate::address::bracketed(dest.host).into_owned(),
        false => crate::address::authority(dest.host, dest.port),
    }
}

/// What the response head showed.
struct Head {
    status: StatusCode,
    squid_error: Option<String>,
    /// The body of a 470 answer (Azure Firewall's deny), at most `firewall::MAX_ANSWER` bytes.
    deny_body: Vec<u8>,
}

/// Sends the request and waits for the response head; Phase::FirstByte is that wait.
async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
    deadline: Instant,
    ev: &mut Evidence,
) -> Result<Head, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Clock::now();
    let result = timeout_at(deadline, async {
        let (mut sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .handshake(TokioIo::new(stream))
            .await?;
        let mut conn = std::pin::pin!(conn);
        let mut conn_done = false;
        let mut response = std::pin::pin!(sender.send_request(request));
        let response = tokio::select! {
            biased;
            r = &mut response => r,
            // The connection can end right after it delivered the response: collect it.
            done = &mut conn => {
                conn_done = true;
                match done {
                    Ok(()) => response.await,
                    Err(e) => Err(e),
                }
            }
        }?;
        let first_byte = start.elapsed();
        let status = response.status();
        let squid_error = response
            .headers()
            .get("x-squid-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut deny_body = Vec::new();
        if status.as_u16() == firewall::DENY_STATUS {
            // The firewall's sentence, read while the connection is driven; whatever has not
            // come by the deadline is left (the head alone still counts).
            let mut body = response.into_body();
            let _ = timeout_at(deadline, async {
                while deny_body.len() < firewall::MAX_ANSWER {
                    tokio::select! {
                        biased;
                        frame = body.frame() => match frame {
                            Some(Ok(frame)) => {
                                if let Some(data) = frame.data_ref() {
                                    let room = firewall::MAX_ANSWER - deny_body.len();
                                    deny_body.extend_from_slice(&data[..data.len().min(room)]);
                                }
                            }
                            _ => break,
                        },
                        _ = &mut conn, if !conn_done => conn_done = true,
                    }
                }
            })
            .await;
        }
        Ok::<_, hyper::Error>((
            first_byte,
            Head {
                status,
                squid_error,
                deny_body,
            },
        ))
    })
    .await;
    match result {
        Err(_) => {
            ev.phase(Phase::FirstByte, start.elapsed());
            Err(ProbeError::new(
                ErrorKind::Timeout,
                "no HTTP response head before the deadline",
            ))
        }
        Ok(Err(e)) => {
            ev.phase(Phase::FirstByte, start.elapsed());
            Err(hyper_error(&e))
        }
        Ok(Ok((first_byte, head))) => {
            ev.phase(Phase::FirstByte, first_byte);
            Ok(head)
        }
    }
}

/// A hyper error with the OS error under it classified, when there is one.
fn hyper_error(e: &hyper::Error) -> ProbeError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ProbeError::new(
                dial::classify_io(io),
                format!("no HTTP response: {}", dial::describe_io(io)),
            );
        }
        source = s.source();
    }
    ProbeError::new(ErrorKind::Io, format!("no valid HTTP response: {e}"))
}

fn judge(
    ask: &Ask,
    url: &str,
    head: Head,
    proxy: Option<&ProxyUrl>,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let code = head.status.as_u16();
    ev.http_status = Some(code);
    let status = format!(
        "{code} {}",
        head.status.canonical_reason().unwrap_or_default()
    )
    .trim_end()
    .to_string();
    // Azure Firewall's own answer, through a proxy or not: its application rules deny the FQDN.
    if let Some(deny) = firewall::parse_deny(code, &head.deny_body) {
        let seen_on = format!("{} {url}", ask.method);
        let said = deny.describe();
        ev.firewall = Some(FirewallEvidence {
            deny: said.clone(),
            seen_on: seen_on.clone(),
            no_rule_matched: deny.by_default(),
        });
        return Err(ProbeError::new(
            ErrorKind::FirewallDenied,
            format!(
                "{seen_on} answered {code} from an application-rule firewall (Azure Firewall): {said}"
            ),
        ));
    }
    if let Some(proxy) = proxy {
        if code == 407 {
            return Err(ProbeError::new(
                ErrorKind::ProxyAuthRequired,
                format!(
                    "proxy {proxy} answered {status} for {url}: check the credentials in the proxy URL"
                ),
            ));
        }
        if let Some(squid) = head.squid_error.filter(|_| !accepted(ask.accept, code)) {
            return Err(ProbeError::new(
                ErrorKind::ProxyDenied,
                format!("proxy {proxy} refused {url}: {status}, {squid}"),
            ));
        }
    }
    if !accepted(ask.accept, code) {
        let via = proxy
            .map(|p| format!(" (through proxy {p}: the status may be the proxy's)"))
            .unwrap_or_default();
        return Err(ProbeError::new(
            ErrorKind::HttpStatus,
            format!(
                "{} {url} answered {status}, expected {}{via}",
                ask.method,
                accept_list(ask.accept)
            ),
        ));
    }
    ev.note(format!("HTTP {code}"));
    Ok(())
}

fn accepted(accept: &[StatusMatch], code: u16) -> bool {
    accept.iter().any(|m| m.matches(code))
}

pub(crate) fn accept_list(accept: &[StatusMatch]) -> String {
    let parts: Vec<String> = accept
        .iter()
        .map(|m| match m {
            StatusMatch::Code(c) => c.to_string(),
            StatusMatch::Class(c) => format!("{c}xx"),
        })
        .collect();
    parts.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, port: u16, tls: bool) -> (Dest<'_>, Web) {
        let dest = Dest {
            host,
            port,
            client: Default::default(),
        };
        let web = Web {
            tls,
            path: "/x?y=1".into(),
        };
        (dest, web)
    }

    #[test]
    fn urls_and_host_headers() {
        let (d, w) = at("example.org", 443, true);
        assert_eq!(url(d, &w), "https://example.org/x?y=1");
        let (d, w) = at("example.org", 8080, false);
        assert_eq!(url(d, &w), "http://example.org:8080/x?y=1");
        let (d, w) = at("::1", 80, false);
        assert_eq!(host_header(d, &w), "[::1]");
        let (d, w) = at("::1", 8443, true);
        assert_eq!(host_header(d, &w), "[::1]:8443");
        assert_eq!(
            accept_list(&[StatusMatch::Class(2), StatusMatch::Code(401)]),
            "2xx or 401"
        );
    }
}
