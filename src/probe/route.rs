//! Opens the byte stream of a TLS, HTTP or WebSocket probe: straight to the target, or to the
//! proxy curl would pick, with an HTTP CONNECT tunnel through it when the probe needs one.
//!
//! For a proxied target the proxy resolves the name, so a local DNS failure is recorded but
//! is not a failure, and the local lookup runs beside the tunnel without ever delaying it.
//! Everything shares the probe's one deadline, which the caller carries on through TLS and the
//! request.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::client::TlsStream;

use super::{Dest, ProbeEnv};
use crate::address::authority;
use crate::net::proxy::{self, ProxyUrl, Route, Scheme};
use crate::net::{USER_AGENT, dial, tls};
use crate::outcome::{ErrorKind, Evidence, Phase, ProbeError};

/// Cap on a CONNECT response head: proxies answer in a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;

/// A connected stream and what the rest of the exchange must know about it.
pub struct Opened<S = TcpStream> {
    pub stream: S,
    /// Set when a plain `http://` request goes to this proxy in absolute form (no tunnel).
    pub forward_proxy: Option<ProxyUrl>,
    /// The end of the exchange: the caller's TLS, request and reply must fit before it.
    pub deadline: Instant,
}

/// Opens the stream for `scheme://target`: direct, or through the proxy. Only plain `http`
/// goes to the proxy without a tunnel; https, ws and wss (and TLS probes, as https) tunnel,
/// because forward proxies drop the `Upgrade` header a WebSocket needs.
pub async fn open(
    dest: Dest<'_>,
    scheme: Scheme,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<Opened, ProbeError> {
    let decision = proxy::decide(&env.net, dest.client, scheme, dest.host, dest.port)
        .map_err(|e| ProbeError::new(ErrorKind::ProxyUnreachable, format!("proxy setting: {e}")))?;
    if let Some(warning) = decision.warning {
        ev.warnings.push(warning);
    }
    if let Some(source) = decision.source {
        ev.note(format!("proxy setting from {source}"));
    }
    let route = decision.route;
    let proxy = match route {
        Route::Direct | Route::Bypassed => {
            let stream = super::tcp::connect(dest, env, ev).await?;
            dial::no_delay(&stream)?;
            if let Some(note) = route.note() {
                ev.note(note);
            }
            return Ok(Opened {
                stream,
                forward_proxy: None,
                deadline: super::deadline(env),
            });
        }
        Route::Proxy(p) => p,
    };
    ev.via_proxy = Some(proxy.to_string());
    let deadline = super::deadline(env);
    // The local lookup is evidence only: it runs while the tunnel opens, and whatever it has
    // not answered by then is left unanswered.
    let mut lookup = std::pin::pin!(env.dns.resolve(dest.host));
    let mut local = None;
    let mut phases = Evidence::default();
    let opened = {
        let mut tunnel = std::pin::pin!(tunnel(dest, scheme, proxy, env, &mut phases, deadline));
        loop {
            tokio::select! {
                biased;
                opened = &mut tunnel => break opened,
                answer = &mut lookup, if local.is_none() => local = Some(answer),
            }
        }
    };
    if local.is_none() {
        local = tokio::time::timeout(std::time::Duration::ZERO, &mut lookup)
            .await
            .ok();
    }
    match local {
        Some(Ok(r)) => r.record(ev),
        Some(Err((e, elapsed))) => {
            ev.phase(Phase::Dns, elapsed);
            ev.note(format!("resolved by proxy (local DNS: {})", e.kind));
        }
        None => ev.note("resolved by proxy (local DNS had not answered when the tunnel was up)"),
    }
    for (phase, ms) in phases.phases_ms {
        *ev.phases_ms.entry(phase).or_insert(0.0) += ms;
    }
    ev.peer = phases.peer;
    opened
}

/// TCP to the proxy, then (but for plain http) `CONNECT` through it, within `deadline`.
async fn tunnel(
    dest: Dest<'_>,
    scheme: Scheme,
    proxy: ProxyUrl,
    env: &ProbeEnv,
    ev: &mut Evidence,
    deadline: Instant,
) -> Result<Opened, ProbeError> {
    let mut stream = dial_proxy(&proxy, env, ev, deadline).await?;
    if scheme == Scheme::Http {
        return Ok(Opened {
            stream,
            forward_proxy: Some(proxy),
            deadline,
        });
    }
    let start = std::time::Instant::now();
    let result = connect(
        &mut stream,
        &proxy,
        &authority(dest.host, dest.port),
        deadline,
    )
    .await;
    ev.phase(Phase::ProxyConnect, start.elapsed());
    result?;
    Ok(Opened {
        stream,
        forward_proxy: None,
        deadline,
    })
}

/// The byte stream of a web exchange: plain TCP, or TLS over TCP.
pub trait WebStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> WebStream for T {}

/// Opens the stream of an HTTP or WebSocket exchange: `open`, then TLS offering HTTP/1.1 for
/// https and wss, within the exchange deadline.
pub async fn open_web(
    dest: Dest<'_>,
    scheme: Scheme,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<Opened<Box<dyn WebStream>>, ProbeError> {
    let Opened {
        stream,
        forward_proxy,
        deadline,
    } = open(dest, scheme, env, ev).await?;
    let stream: Box<dyn WebStream> = match scheme {
        Scheme::Https | Scheme::Wss => {
            let tls = handshake(stream, dest.host, &[b"http/1.1"], env, ev);
            Box::new(within(deadline, tls, "TLS handshake").await??)
        }
        Scheme::Http | Scheme::Ws => Box::new(stream),
    };
    Ok(Opened {
        stream,
        forward_proxy,
        deadline,
    })
}

/// Runs one step of the exchange (TLS, a request, an upgrade) until the exchange deadline.
pub async fn within<T>(
    deadline: Instant,
    step: impl Future<Output = T>,
    what: &str,
) -> Result<T, ProbeError> {
    timeout_at(deadline, step).await.map_err(|_| {
        ProbeError::new(
            ErrorKind::Timeout,
            format!("{what} not finished before the deadline"),
        )
    })
}

/// TCP to the proxy; every failure to get there is `proxy_unreachable`.
async fn dial_proxy(
    proxy: &ProxyUrl,
    env: &ProbeEnv,
    ev: &mut Evidence,
    deadline: Instant,
) -> Result<TcpStream, ProbeError> {
    let unreachable =
        |why: String| ProbeError::new(ErrorKind::ProxyUnreachable, format!("proxy {proxy}: {why}"));
    let left = deadline.saturating_duration_since(Instant::now());
    let addrs = env
        .dns
        .resolve_within(&proxy.host, left)
        .await
        .map_err(|(e, _)| unreachable(e.to_string()))?
        .addrs;
    let start = std::time::Instant::now();
    let left = deadline.saturating_duration_since(Instant::now());
    let result = dial::connect_any(&addrs, proxy.port, left).await;
    ev.phase(Phase::Connect, start.elapsed());
    let (stream, peer) = result.map_err(|e| unreachable(e.to_string()))?;
    dial::no_delay(&stream)?;
    ev.peer = Some(peer);
    Ok(stream)
}

/// Sends `CONNECT authority` and reads the answer: 2xx opens the tunnel.
pub async fn connect(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    target: &str,
    deadline: Instant,
) -> Result<(), ProbeError> {
    let mut request =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {USER_AGENT}\r\n");
    if let Some(auth) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let late = || {
        ProbeError::new(
            ErrorKind::Timeout,
            format!("proxy {proxy} did not answer CONNECT {target} in time"),
        )
    };
    let io = |e: std::io::Error| {
        ProbeError::new(
            ErrorKind::ProxyDenied,
            format!("proxy {proxy} during CONNECT {target}: {e}"),
        )
    };
    timeout_at(deadline, stream.write_all(request.as_bytes()))
        .await
        .map_err(|_| late())?
        .map_err(io)?;

    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let answer = loop {
        match parse_head(&head) {
            Ok(Some(answer)) => break answer,
            Ok(None) => {}
            Err(()) => {
                let first = String::from_utf8_lossy(&head);
                let first = first
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(80)
                    .collect::<String>();
                return Err(ProbeError::new(
                    ErrorKind::ProxyDenied,
                    format!(
                        "proxy {proxy} answered CONNECT with something that is not HTTP: {first:?}"
                    ),
                ));
            }
        }
        if head.len() >= MAX_HEAD {
            return Err(ProbeError::new(
                ErrorKind::ProxyDenied,
                format!("proxy {proxy}: CONNECT answer head longer than {MAX_HEAD} bytes"),
            ));
        }
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| late())?
            .map_err(io)?;
        if n == 0 {
            return Err(ProbeError::new(
                ErrorKind::ProxyDenied,
                format!("proxy {proxy} closed the connection without answering CONNECT {target}"),
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let Head {
        end,
        code,
        reason,
        squid,
    } = answer;
    match code {
        200..=299 if head.len() > end => Err(ProbeError::new(
            ErrorKind::ProxyDenied,
            format!("proxy {proxy} sent data before the tunnel was used"),
        )),
        200..=299 => Ok(()),
        // A 401 to CONNECT can only come from the proxy (tinyproxy answers wrong credentials so).
        401 | 407 => {
            let what = if proxy.has_credentials() {
                "the proxy refused the credentials in the proxy URL"
            } else {
                "put credentials in the proxy URL: http://USER:PASSWORD@host:port"
            };
            Err(ProbeError::new(
                ErrorKind::ProxyAuthRequired,
                format!("proxy {proxy} answered {code} {reason}: {what}"),
            ))
        }
        _ => {
            let squid = squid.map(|v| format!(", {v}")).unwrap_or_default();
            let why = match code {
                403 => " (the proxy's policy does not allow this host or port)",
                500..=599 => " (the proxy could not reach the target)",
                _ => "",
            };
            Err(ProbeError::new(
                ErrorKind::ProxyDenied,
                format!("proxy {proxy} refused CONNECT {target}: {code} {reason}{squid}{why}"),
            ))
        }
    }
}

/// What a proxy's answer head says: where it ends, the status, its reason phrase and squid's
/// error header (both cleaned of control characters and cut to 80 characters).
#[derive(Debug, PartialEq)]
struct Head {
    end: usize,
    code: u16,
    reason: String,
    squid: Option<String>,
}

/// Parses an answer head with httparse: `Ok(None)` while it is incomplete, `Err` when it is
/// not an HTTP/1.x response (or has more headers than any proxy sends).
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let end = match response.parse(bytes) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let code = response
        .code
        .filter(|c| (100..=599).contains(c))
        .ok_or(())?;
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect()
    };
    let squid = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-squid-error"))
        .map(|h| clean(&String::from_utf8_lossy(h.value)));
    Ok(Some(Head {
        end,
        code,
        reason: clean(response.reason.unwrap_or_default()),
        squid,
    }))
}

/// `net::tls::handshake` with the run's trust, within what is left of the probe's deadline,
/// recording Phase::Tls, the chain and any interception warning in the evidence.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    server_name: &str,
    alpn: &[&[u8]],
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<TlsStream<tls::Counted<S>>, ProbeError> {
    let trust = tls::trust(&env.tls, &env.net).await?;
    let wait = super::remaining(env);
    let (result, seen) = tls::handshake(
        stream,
        server_name,
        alpn,
        trust,
        wait,
        env.net.allow_intercept,
    )
    .await;
    // Zero when it never started (a name that is not a TLS server name).
    if !seen.took.is_zero() {
        ev.phase(Phase::Tls, seen.took);
    }
    if seen.tls.is_some() {
        ev.tls = seen.tls;
    }
    ev.warnings.extend(seen.warning);
    match result {
        Err(mut e) if e.kind == ErrorKind::TlsResetAfterHello => {
            confirm_firewall(&mut e, server_name, env, ev).await;
            Err(e)
        }
        other => other,
    }
}

/// A reset after the ClientHello on a direct path to a name: one HTTP request to the same name
/// and address on port 80 (once per FQDN in a run, within the probe's deadline). Azure
/// Firewall answers it with its 470 deny when its application rules do not allow the name,
/// which names the firewall for certain; any other answer, or none, leaves the reset as seen.
async fn confirm_firewall(
    e: &mut ProbeError,
    server_name: &str,
    env: &ProbeEnv,
    ev: &mut Evidence,
) {
    let host = crate::address::bare(server_name);
    let (Some(peer), None) = (ev.peer, &ev.via_proxy) else {
        return;
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let Some(deny) = env.firewall.confirm(peer, host, super::deadline(env)).await else {
        return;
    };
    let said = deny.describe();
    let seen_on = format!("GET http://{host}/");
    e.message = format!(
        "{}; {seen_on} (port 80, same address) answered 470 from Azure Firewall: {said}",
        e.message
    );
    ev.firewall = Some(crate::outcome::FirewallEvidence {
        deny: said,
        seen_on,
        no_rule_matched: deny.by_default(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A one-shot "proxy" on loopback that answers any request with `answer` (then holds the
    /// connection open briefly, or stays silent when `answer` is empty); returns what it read.
    async fn canned(
        answer: &'static [u8],
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            if !answer.is_empty() {
                s.write_all(answer).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(if answer.is_empty() {
                1500
            } else {
                200
            }))
            .await;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn connect_answers_map_to_kinds() {
        let cases: &[(&[u8], Option<ErrorKind>, &str)] = &[
            (b"HTTP/1.1 200 Connection established\r\n\r\n", None, ""),
            (b"HTTP/1.0 200 OK\r\nVia: x\r\n\r\n", None, ""),
            (
                b"HTTP/1.1 403 Forbidden\r\nServer: squid\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n\r\n",
                Some(ErrorKind::ProxyDenied),
                "403 Forbidden, ERR_ACCESS_DENIED 0 (the proxy's policy",
            ),
            (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", Some(ErrorKind::ProxyDenied), "could not reach"),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                Some(ErrorKind::ProxyAuthRequired),
                "refused the credentials",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nunexpected", Some(ErrorKind::ProxyDenied), "sent data before"),
            (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", Some(ErrorKind::ProxyDenied), "not HTTP"),
            (b"HTTP/1.1 200", Some(ErrorKind::ProxyDenied), "closed the connection"),
            (b"", Some(ErrorKind::Timeout), "did not answer"),
        ];
        let proxy = ProxyUrl::parse("http://svc:hunter2@127.0.0.1:1").unwrap();
        for &(answer, want, text) in cases {
            let (addr, task) = canned(answer).await;
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let deadline = Instant::now() + Duration::from_millis(700);
            let result = connect(&mut stream, &proxy, "example.org:443", deadline).await;
            assert_eq!(
                result.as_ref().err().map(|e| e.kind),
                want,
                "{:?}: {result:?}",
                String::from_utf8_lossy(answer)
            );
            if let Err(e) = result {
                assert!(
                    e.message.contains(text) && !e.message.contains("hunter2"),
                    "{e}"
                );
            }
            let request = task.await.unwrap();
            assert!(
                request
                    .starts_with("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n"),
                "{request}"
            );
            assert!(
                request.contains("Proxy-Authorization: Basic c3ZjOmh1bnRlcjI=\r\n"),
                "{request}"
            );
        }
    }

    #[test]
    fn answer_heads() {
        let head =
            |raw: &str| parse_head(raw.as_bytes()).map(|h| h.map(|h| (h.code, h.reason, h.squid)));
        assert_eq!(
            head("HTTP/1.1 200 Connection established\r\n\r\n"),
            Ok(Some((200, "Connection established".into(), None)))
        );
        assert_eq!(
            head("HTTP/1.0 407 Proxy Authentication Required\r\n\r\n"),
            Ok(Some((407, "Proxy Authentication Required".into(), None)))
        );
        assert_eq!(
            head("HTTP/1.1 403 \r\n\r\n"),
            Ok(Some((403, String::new(), None)))
        );
        assert_eq!(head("HTTP/1.1 200 OK\r\nVia: x"), Ok(None), "incomplete");
        assert_eq!(head("SSH-2.0-OpenSSH\r\n\r\n"), Err(()));
        assert_eq!(head("HTTP/1.1 abc x\r\n\r\n"), Err(()));
        assert_eq!(head("HTTP/1.1 999 Nine\r\n\r\n"), Err(()));
        assert_eq!(
            head(
                "HTTP/1.1 403 Forbidden\r\nServer: squid\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n\r\n"
            ),
            Ok(Some((
                403,
                "Forbidden".into(),
                Some("ERR_ACCESS_DENIED 0".into())
            )))
        );
        assert_eq!(
            head("HTTP/1.1 403 \x1b[2JEvil\r\n\r\n"),
            Err(()),
            "a reason phrase with control characters is not HTTP"
        );
    }
}
