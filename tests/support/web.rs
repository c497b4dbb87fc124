//! In-process HTTP and WebSocket servers on 127.0.0.1, plain or TLS, that record what they saw.
//! HTTP: `/status/NNN` answers NNN, anything else 200. WebSocket: `/refuse` answers 403,
//! anything else upgrades and waits (bounded) for the client's close frame.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

const WAIT: Duration = Duration::from_secs(5);
/// Connections a server accepts before it stops: every test needs only a few.
const MAX_CONNECTIONS: usize = 64;

/// Request heads an HTTP server received, or what a WebSocket server saw per client.
pub type Log = Arc<Mutex<Vec<String>>>;

async fn listen(
    tls: Option<Arc<ServerConfig>>,
) -> (TcpListener, SocketAddr, Option<tokio_rustls::TlsAcceptor>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr, tls.map(tokio_rustls::TlsAcceptor::from))
}

/// Runs `serve` on each accepted connection, over TLS when an acceptor is given.
fn accept_loop<F, Fut>(listener: TcpListener, acceptor: Option<tokio_rustls::TlsAcceptor>, serve: F)
where
    F: Fn(Box<dyn Stream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                let stream: Box<dyn Stream> = match acceptor {
                    Some(a) => match tokio::time::timeout(WAIT, a.accept(tcp)).await {
                        Ok(Ok(tls)) => Box::new(tls),
                        _ => return,
                    },
                    None => Box::new(tcp),
                };
                serve(stream).await;
            });
        }
    });
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl Stream for TcpStream {}
impl Stream for tokio_rustls::server::TlsStream<TcpStream> {}

pub async fn http_server(tls: Option<Arc<ServerConfig>>) -> (SocketAddr, Log) {
    let (listener, addr, acceptor) = listen(tls).await;
    let log: Log = Default::default();
    let seen = log.clone();
    accept_loop(listener, acceptor, move |mut s| {
        let seen = seen.clone();
        async move {
            let Some(head) = read_head(&mut s).await else {
                return;
            };
            let target = head.split(' ').nth(1).unwrap_or("/").to_string();
            seen.lock().unwrap().push(head);
            let path = target
                .split_once("://")
                .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
                .unwrap_or(&target);
            let code: u16 = path
                .strip_prefix("/status/")
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            let reason = StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Status");
            let answer = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (addr, log)
}

/// Reads a request head, capped at 16 KiB and 5 s.
async fn read_head(s: &mut Box<dyn Stream>) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 16 * 1024 {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
    }
    None
}

/// Each client logs "ua=<User-Agent> close=<true|false>": whether a close frame came.
// The refusal type is tungstenite's callback contract.
#[allow(clippy::result_large_err)]
pub async fn ws_server(tls: Option<Arc<ServerConfig>>) -> (SocketAddr, Log) {
    let (listener, addr, acceptor) = listen(tls).await;
    let log: Log = Default::default();
    let seen = log.clone();
    accept_loop(listener, acceptor, move |s| {
        let seen = seen.clone();
        async move {
            let ua = Arc::new(Mutex::new(String::new()));
            let ua_cb = ua.clone();
            let callback =
                move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    *ua_cb.lock().unwrap() = req
                        .headers()
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    if req.uri().path() == "/refuse" {
                        let mut refusal = ErrorResponse::new(Some("no upgrade here".into()));
                        *refusal.status_mut() = StatusCode::FORBIDDEN;
                        return Err(refusal);
                    }
                    Ok(resp)
                };
            let Ok(Ok(mut ws)) =
                tokio::time::timeout(WAIT, tokio_tungstenite::accept_hdr_async(s, callback)).await
            else {
                return;
            };
            let closed = matches!(
                tokio::time::timeout(WAIT, ws.next()).await,
                Ok(Some(Ok(Message::Close(_))))
            );
            let ua = ua.lock().unwrap().clone();
            seen.lock().unwrap().push(format!("ua={ua} close={closed}"));
        }
    });
    (addr, log)
}

/// Polls `log` (bounded) until it holds `n` entries.
pub async fn wait_for(log: &Log, n: usize) -> Vec<String> {
    for _ in 0..100 {
        if log.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.lock().unwrap().clone()
}
