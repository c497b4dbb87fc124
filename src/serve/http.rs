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

use super::web_config::Verdict;
use super::{Share, State};

/// Connections served at once. Past it, a new connection takes the place of one that is waiting
/// (for its TLS handshake, its request head, or its next request on a kept-alive connection),
/// never of one with a request in flight. The one closed belongs to the address (an IPv6 /64)
/// holding the most connections, newcomer included, and is the one of that address waiting the
/// longest: attackers from other addresses only ever close each other's connections, and one
/// address alone may use every place. A scraper that sends its request in time is closed only
/// when a whole table of newer connections from its own address arrived while it waited.
const MAX_CONNECTIONS: usize = 256;
/// A client must finish its TLS handshake, and each request head, within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Even a busy keep-alive connection is closed after this; the scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// The cap on a request head (hyper's minimum buffer), and on its number of headers.
const MAX_REQUEST_HEAD: usize = 8192;
const MAX_HEADERS: usize = 64;

/// One open connection: whose share, whether a request is in flight, since when it has been
/// waiting, and how to close it.
struct Open {
    share: Share,
    busy: bool,
    waiting_since: Instant,
    close: Arc<Notify>,
}

/// The open connections, by a number of their own, and how many each share holds.
#[derive(Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, Open>,
    held: HashMap<Share, usize>,
}

type Shared = Arc<Mutex<Connections>>;

impl Connections {
    /// Registers a new connection from `peer`, first closing one to make room when the table is
    /// full; `None` (the newcomer is closed) when every connection that could make room has a
    /// request in flight.
    fn admit(&mut self, peer: IpAddr, now: Instant) -> Option<(u64, Arc<Notify>)> {
        let share = Share::of(peer);
        if self.open.len() >= MAX_CONNECTIONS {
            let id = self.victim(share)?;
            let c = self.remove(id)?;
            log::debug!("closing a waiting connection of {peer:?}'s share to make room");
            c.close.notify_one();
        }
        let id = self.next;
        self.next += 1;
        let close = Arc::new(Notify::new());
        self.open.insert(
            id,
            Open {
                share,
                busy: false,
                waiting_since: now,
                close: close.clone(),
            },
        );
        *self.held.entry(share).or_default() += 1;
        Some((id, close))
    }

    /// The waiting connection of the largest share (the newcomer counted in its own) that has
    /// waited the longest; none when that share would be smaller than the newcomer's.
    fn victim(&self, newcomer: Share) -> Option<u64> {
        let holds = |s: Share| self.held.get(&s).copied().unwrap_or(0) + usize::from(s == newcomer);
        let (id, c) = self
            .open
            .iter()
            .filter(|(_, c)| !c.busy)
            .max_by_key(|(_, c)| (holds(c.share), std::cmp::Reverse(c.waiting_since)))?;
        (holds(c.share) >= holds(newcomer)).then_some(*id)
    }

    fn remove(&mut self, id: u64) -> Option<Open> {
        let c = self.open.remove(&id)?;
        if let Some(n) = self.held.get_mut(&c.share) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&c.share);
            }
        }
        Some(c)
    }

    /// A request head arrived (`busy`), or its answer is done and the connection waits again.
    fn mark(&mut self, id: u64, busy: bool, now: Instant) {
        if let Some(c) = self.open.get_mut(&id) {
            c.busy = busy;
            c.waiting_since = now;
        }
    }
}

/// Unregisters a connection when its task ends, however it ends.
struct Registered(u64, Shared);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut c) = self.1.lock() {
            c.remove(self.0);
        }
    }
}

/// Marks a connection busy while a request of it is answered; waiting again once the answer is
/// done (or abandoned).
struct InFlight(u64, Shared);

impl InFlight {
    fn start(id: u64, connections: &Shared) -> InFlight {
        if let Ok(mut c) = connections.lock() {
            c.mark(id, true, Instant::now());
        }
        InFlight(id, connections.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut c) = self.1.lock() {
            c.mark(self.0, false, Instant::now());
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
            Ok(mut c) => match c.admit(peer.ip(), Instant::now()) {
                Some(admitted) => admitted,
                None => {
                    log::debug!(
                        "closing a connection from {peer}: every place has a request in flight"
                    );
                    continue;
                }
            },
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
    let busy = {
        let (id, connections) = (registered.0, registered.1.clone());
        move || InFlight::start(id, &connections)
    };
    let tls = state.web().tls;
    let served = match tls {
        None => {
            tokio::time::timeout(
                CONNECTION_LIFETIME,
                serve_connection(stream, peer.ip(), state, busy),
            )
            .await
        }
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    tokio::time::timeout(
                        CONNECTION_LIFETIME,
                        serve_connection(tls, peer.ip(), state, busy),
                    )
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

/// HTTP/1.1 on an established stream; `busy` marks the connection busy while each request is
/// answered.
async fn serve_connection<I>(
    io: I,
    peer: IpAddr,
    state: Arc<State>,
    busy: impl Fn() -> InFlight + Send + Sync + 'static,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        let in_flight = busy();
        async move {
            let answer = route(&req, peer, &state).await;
            drop(in_flight);
            Ok::<_, Infallible>(answer)
        }
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

async fn route(req: &Request<Incoming>, peer: IpAddr, state: &State) -> Reply {
    let head = req.method() == Method::HEAD;
    let mut r = answer(req, peer, state).await;
    if head {
        *r.body_mut() = Full::new(Bytes::new());
    }
    r
}

async fn answer(req: &Request<Incoming>, peer: IpAddr, state: &State) -> Reply {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    // Liveness and readiness carry nothing secret and must work for probes without credentials.
    let verdict = match state.web().auth {
        Some(auth) if !matches!(path, "/healthz" | "/readyz") => {
            let given = req.headers().get(header::AUTHORIZATION);
            auth.check(given.map(HeaderValue::as_bytes), peer).await
        }
        _ => Verdict::Allowed,
    };
    match verdict {
        Verdict::Allowed => {}
        Verdict::Denied => {
            log::info!("401 for {path}: missing or wrong Basic auth credentials");
            let mut r = reply(StatusCode::UNAUTHORIZED, TEXT, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vnetprobe\""),
            );
            return r;
        }
        Verdict::Busy => {
            log::debug!("429 for {path} from {peer}: too many credentials waiting for a check");
            let mut r = reply(
                StatusCode::TOO_MANY_REQUESTS,
                TEXT,
                "too many requests wait for a password check: retry\n",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A full table: `n` connections from each of `peers`, in turn, one millisecond apart.
    fn full(peers: &[&str]) -> (Connections, Instant) {
        let mut c = Connections::default();
        let t0 = Instant::now();
        for i in 0..MAX_CONNECTIONS {
            let at = t0 + Duration::from_millis(i as u64);
            c.admit(ip(peers[i % peers.len()]), at).unwrap();
        }
        (c, t0)
    }

    fn share_of(c: &Connections, id: u64) -> Option<Share> {
        c.open.get(&id).map(|o| o.share)
    }

    #[test]
    fn one_address_alone_may_hold_every_place() {
        let (c, _) = full(&["127.0.0.1"]);
        assert_eq!(c.open.len(), MAX_CONNECTIONS);
        assert_eq!(c.held[&Share::of(ip("127.0.0.1"))], MAX_CONNECTIONS);
    }

    #[test]
    fn a_newcomer_displaces_the_longest_waiting_of_the_largest_share() {
        let (mut c, t0) = full(&["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"]);
        let later = t0 + Duration::from_secs(1);
        // 10.0.0.1 holds 192, 10.0.0.2 64: its oldest (id 0) goes, whoever comes.
        let (scraper, _) = c.admit(ip("10.0.0.9"), later).unwrap();
        assert!(!c.open.contains_key(&0));
        assert_eq!(c.open.len(), MAX_CONNECTIONS);
        // The scraper's one connection is never the one closed for other shares' newcomers,
        // however long it waits.
        for i in 0..5 * MAX_CONNECTIONS {
            c.admit(ip(&format!("10.0.1.{}", i % 200)), later).unwrap();
            assert!(c.open.contains_key(&scraper), "closed after {i} newcomers");
        }
    }

    #[test]
    fn within_one_address_the_longest_waiting_goes_and_requests_in_flight_never() {
        let (mut c, t0) = full(&["127.0.0.1"]);
        let now = t0 + Duration::from_secs(1);
        // The oldest connection sent its request: it is busy, so the next oldest goes.
        c.mark(0, true, now);
        c.admit(ip("127.0.0.1"), now).unwrap();
        assert!(c.open.contains_key(&0) && !c.open.contains_key(&1));
        // A kept-alive connection answered just now waits from now: newer than the others.
        c.mark(2, false, now);
        c.admit(ip("127.0.0.1"), now).unwrap();
        assert!(c.open.contains_key(&2) && !c.open.contains_key(&3));

        // Every connection busy: the newcomer is the one refused.
        let ids: Vec<u64> = c.open.keys().copied().collect();
        for id in ids {
            c.mark(id, true, now);
        }
        assert!(c.admit(ip("127.0.0.1"), now).is_none());
        assert!(c.admit(ip("10.0.0.1"), now).is_none());
        assert_eq!(c.open.len(), MAX_CONNECTIONS);
    }

    #[test]
    fn a_share_that_is_all_busy_does_not_push_out_smaller_ones() {
        let (mut c, t0) = full(&["10.0.0.1"; 1]);
        let now = t0 + Duration::from_secs(1);
        // 10.0.0.1's connections are all busy but one, which 10.0.0.2 takes over.
        let ids: Vec<u64> = c.open.keys().copied().filter(|&id| id != 7).collect();
        for id in ids {
            c.mark(id, true, now);
        }
        let (small, _) = c.admit(ip("10.0.0.2"), now).unwrap();
        assert!(!c.open.contains_key(&7));
        // Now 10.0.0.1 has nothing waiting: its newcomer may not close 10.0.0.2's only one.
        assert!(c.admit(ip("10.0.0.1"), now).is_none());
        assert!(c.open.contains_key(&small));
        // Another small share may (both hold one, the waiting one goes).
        assert!(c.admit(ip("10.0.0.3"), now).is_some());
        assert!(!c.open.contains_key(&small));
    }

    #[test]
    fn ipv6_shares_are_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Share::of(ip("2001:db8:1:2::1")),
            Share::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Share::of(ip("2001:db8:1:2::1")),
            Share::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Share::of(ip("::ffff:10.0.0.1")), Share::of(ip("10.0.0.1")));
        assert_ne!(Share::of(ip("::a00:1")), Share::of(ip("10.0.0.1")));
        let (mut c, _) = full(&["2001:db8::1"]);
        let id = c.next - 1;
        c.admit(ip("2001:db8::2"), Instant::now()).unwrap();
        assert_eq!(share_of(&c, id), Some(Share::of(ip("2001:db8::3"))));
        assert_eq!(c.held.len(), 1);
    }
}
