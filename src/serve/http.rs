//! The HTTP side of the daemon: a bounded accept loop (connection caps with eviction, handshake
//! and header deadlines, small request heads) and the endpoints, which only read the latest
//! snapshot.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::State;

/// Connections served at once, and from one peer address. Past either cap, the connection quiet
/// the longest (an idle keep-alive, or a client that never finishes its TLS handshake or request
/// head) is closed to make room: slow or idle clients can never lock a scraper out.
const MAX_CONNECTIONS: usize = 256;
const MAX_PER_PEER: usize = 64;
/// A client must finish its TLS handshake, and each request head, within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Even a busy keep-alive connection is closed after this; the scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// The cap on a request head (hyper's minimum buffer), and on its number of headers.
const MAX_REQUEST_HEAD: usize = 8192;
const MAX_HEADERS: usize = 64;

/// One open connection: who, when it last asked for something, and how to close it.
struct Open {
    peer: IpAddr,
    active: Instant,
    close: Arc<Notify>,
}

/// The open connections, by a number of their own.
#[derive(Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, Open>,
}

type Shared = Arc<Mutex<Connections>>;

impl Connections {
    /// Registers a new connection from `peer`, first closing the quietest one when a cap is
    /// reached (that peer's own when it holds too many).
    fn admit(&mut self, peer: IpAddr) -> (u64, Arc<Notify>) {
        let from_peer = self.open.values().filter(|c| c.peer == peer).count();
        let quietest = |same_peer: bool| {
            self.open
                .iter()
                .filter(|(_, c)| !same_peer || c.peer == peer)
                .min_by_key(|(_, c)| c.active)
                .map(|(id, _)| *id)
        };
        let evict = if from_peer >= MAX_PER_PEER {
            quietest(true)
        } else if self.open.len() >= MAX_CONNECTIONS {
            quietest(false)
        } else {
            None
        };
        if let Some(c) = evict.and_then(|id| self.open.remove(&id)) {
            log::debug!(
                "closing the quietest connection, from {}, to make room",
                c.peer
            );
            c.close.notify_one();
        }
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        let active = Instant::now();
        self.open.insert(
            id,
            Open {
                peer,
                active,
                close: close.clone(),
            },
        );
        (id, close)
    }

    fn touch(&mut self, id: u64) {
        if let Some(c) = self.open.get_mut(&id) {
            c.active = Instant::now();
        }
    }
}

/// Unregisters a connection when its task ends, however it ends.
struct Registered(u64, Shared);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut c) = self.1.lock() {
            c.open.remove(&self.0);
        }
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Shared::default();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    log::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = super::stopped(&mut stop) => return,
        };
        let (id, close) = match connections.lock() {
            Ok(mut c) => c.admit(peer.ip()),
            Err(_) => return log::error!("the connection table is unusable: no more connections"),
        };
        let registered = Registered(id, connections.clone());
        let state = state.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(stream, peer, state, &registered) => {}
                _ = close.notified() => {}
            }
        });
    }
}

/// Serves one connection: TLS when configured, then HTTP, within the deadlines.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    state: Arc<State>,
    registered: &Registered,
) {
    let touch = {
        let (id, connections) = (registered.0, registered.1.clone());
        move || {
            if let Ok(mut c) = connections.lock() {
                c.touch(id);
            }
        }
    };
    let tls = state.web().tls;
    let served = match tls {
        None => {
            tokio::time::timeout(CONNECTION_LIFETIME, serve_connection(stream, state, touch)).await
        }
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    tokio::time::timeout(CONNECTION_LIFETIME, serve_connection(tls, state, touch))
                        .await
                }
                Ok(Err(e)) => {
                    return log::debug!("TLS handshake with {peer}: {e}");
                }
                Err(_) => {
                    return log::debug!(
                        "TLS handshake with {peer}: no handshake within the deadline"
                    );
                }
            }
        }
    };
    if served.is_err() {
        log::debug!(
            "connection from {peer} closed after {} s",
            CONNECTION_LIFETIME.as_secs()
        );
    }
}

/// HTTP/1.1 on an established stream; `touch` marks the connection active on each request.
async fn serve_connection<I>(io: I, state: Arc<State>, touch: impl Fn() + Send + Sync + 'static)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        touch();
        async move { Ok::<_, Infallible>(route(&req, &state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        log::debug!("connection: {e}");
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

async fn route(req: &Request<Incoming>, state: &State) -> Reply {
    let head = req.method() == Method::HEAD;
    let mut r = answer(req, state).await;
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

async fn answer(req: &Request<Incoming>, state: &State) -> Reply {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    // Liveness and readiness carry nothing secret and must work for probes without credentials.
    if !matches!(path, "/healthz" | "/readyz")
        && let Some(auth) = state.web().auth
        && !auth
            .allows(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
            )
            .await
    {
        log::info!("401 for {path}: missing or wrong Basic auth credentials");
        let mut r = reply(StatusCode::UNAUTHORIZED, TEXT, "unauthorized\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"vnetprobe\""),
        );
        return r;
    }
    match path {
        "/metrics" => metrics(req, state),
        "/results" => match state.latest() {
            Some(s) => reply(StatusCode::OK, JSON, s.results.clone()),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                JSON,
                "{\"error\": \"the first run has not finished yet\"}\n",
            ),
        },
        "/healthz" => match state.health(std::time::Instant::now()) {
            Ok(()) => reply(StatusCode::OK, TEXT, "ok\n"),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
        },
        "/readyz" if state.ready() => reply(StatusCode::OK, TEXT, "ready\n"),
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "not ready: the first run has not finished yet\n",
        ),
        "/" => match state.latest() {
            Some(s) => reply(StatusCode::OK, HTML, s.page.clone()),
            None => reply(StatusCode::OK, HTML, crate::report::html::pending(2)),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /results, /healthz or /readyz\n",
        ),
    }
}

/// The latest run's families and the process metrics of now; gzip when the scraper accepts it
/// (Prometheus always does), without compressing the run's families again.
fn metrics(req: &Request<Incoming>, state: &State) -> Reply {
    let exposition = state.metrics();
    let process = super::process::render(state.start_time);
    let gzip = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(super::exposition::accepts_gzip);
    let mut r = if gzip {
        let mut r = reply(StatusCode::OK, METRICS, exposition.gzip(&process));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        reply(StatusCode::OK, METRICS, exposition.plain(&process))
    };
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}
