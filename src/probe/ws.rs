//! The WebSocket probe: the upgrade handshake over a stream we open ourselves (TCP, TLS, or a
//! CONNECT tunnel then TLS), so proxying, certificate capture and timings stay ours. A refused
//! upgrade is `ws_rejected` with the HTTP status. The socket is closed politely afterwards.

use std::time::Instant as Clock;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::Dest;
use super::route;
use super::{ErrorKind, Evidence, Phase, ProbeEnv, ProbeError};
use crate::address::authority;
use crate::catalog::Web;
use crate::net::proxy::Scheme;
use crate::net::{USER_AGENT, dial};

pub async fn probe(
    dest: Dest<'_>,
    web: &Web,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let scheme = if web.tls { Scheme::Wss } else { Scheme::Ws };
    let opened = route::open_web(dest, scheme, env, ev).await?;
    let url = format!(
        "{}://{}{}",
        scheme.as_str(),
        authority(dest.host, dest.port),
        web.path
    );
    upgrade(opened.stream, &url, opened.deadline, ev).await
}

async fn upgrade<S>(
    stream: S,
    url: &str,
    deadline: Instant,
    ev: &mut Evidence,
) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().map_err(|e| {
        ProbeError::new(
            ErrorKind::Io,
            format!("building the upgrade request for {url}: {e}"),
        )
    })?;
    request
        .headers_mut()
        .insert("User-Agent", HeaderValue::from_static(USER_AGENT));
    let start = Clock::now();
    let result = timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(request, stream, None),
    )
    .await;
    ev.phase(Phase::Upgrade, start.elapsed());
    let (mut socket, response) = match result {
        Err(_) => {
            return Err(ProbeError::new(
                ErrorKind::Timeout,
                format!("{url}: no upgrade answer before the deadline"),
            ));
        }
        Ok(Err(WsError::Http(response))) if signs_in(response.status().as_u16(), ev) => {
            let code = response.status().as_u16();
            ev.http_status = Some(code);
            ev.note(format!("upgrade needs sign-in (HTTP {code})"));
            ev.unverified = Some(format!(
                "the front end answered {code} (a sign-in wall) after a publicly trusted TLS handshake: \
                 the path to it works, the WebSocket upgrade itself was not proven"
            ));
            return Ok(());
        }
        Ok(Err(e)) => return Err(upgrade_error(url, e, ev)),
        Ok(Ok(done)) => done,
    };
    ev.http_status = Some(response.status().as_u16());
    ev.note("upgraded");
    // A close frame, bounded by the deadline; the server's answer to it is not awaited.
    let _ = timeout_at(deadline, socket.close(None)).await;
    Ok(())
}

/// A real compute instance does not upgrade an unauthenticated request: it answers with a
/// sign-in wall (401, 403 or a redirect to sign-in). After a TLS handshake whose chain the public
/// web PKI trusts for this name, that answer comes from the genuine front end, so the path is
/// proven though the upgrade is not. Without TLS, or through an intercepting device, it proves
/// nothing and stays `ws_rejected`.
fn signs_in(status: u16, ev: &Evidence) -> bool {
    let genuine = ev.tls.as_ref().is_some_and(|t| t.trusted_by == "public");
    genuine && matches!(status, 401 | 403 | 301 | 302 | 303 | 307 | 308)
}

fn upgrade_error(url: &str, e: WsError, ev: &mut Evidence) -> ProbeError {
    match e {
        WsError::Http(response) => {
            let status = response.status();
            ev.http_status = Some(status.as_u16());
            ProbeError::new(
                ErrorKind::WsRejected,
                format!(
                    "{url}: the upgrade was refused with {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or_default()
                ),
            )
        }
        WsError::Io(io) => ProbeError::new(
            dial::classify_io(&io),
            format!("{url}: {}", dial::describe_io(&io)),
        ),
        WsError::Protocol(p) => ProbeError::new(
            ErrorKind::WsRejected,
            format!("{url}: not a valid WebSocket upgrade: {p}"),
        ),
        other => ProbeError::new(ErrorKind::WsRejected, format!("{url}: {other}")),
    }
}
