//! The HTTP side of the daemon: a bounded accept loop (connection cap, handshake and header
//! deadlines, small request heads) and the endpoints, which only read the latest snapshot.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::State;
use crate::log;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client must finish its TLS handshake, and each request head, within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Even a busy keep-alive connection is closed after this; the scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// The cap on a request head (hyper's minimum buffer), and on its number of headers.
const MAX_REQUEST_HEAD: usize = 8192;
const MAX_HEADERS: usize = 64;

pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("never closed"),
            _ = super::stopped(&mut stop) => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    log::warn(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = super::stopped(&mut stop) => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = state.web().tls;
            let served = match tls {
                None => {
                    tokio::time::timeout(CONNECTION_LIFETIME, serve_connection(stream, state)).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            tokio::time::timeout(CONNECTION_LIFETIME, serve_connection(tls, state))
                                .await
                        }
                        Ok(Err(e)) => {
                            return log::debug(&format!("TLS handshake with {peer}: {e}"));
                        }
                        Err(_) => {
                            return log::debug(&format!(
                                "TLS handshake with {peer}: no handshake within the deadline"
                            ));
                        }
                    }
                }
            };
            if served.is_err() {
                log::debug(&format!(
                    "connection from {peer} closed after {} s",
                    CONNECTION_LIFETIME.as_secs()
                ));
            }
        });
    }
}

async fn serve_connection<I>(io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&req, &state).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        log::debug(&format!("connection: {e}"));
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
        log::info(&format!(
            "401 for {path}: missing or wrong Basic auth credentials"
        ));
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
        "/healthz" => reply(StatusCode::OK, TEXT, "ok\n"),
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
