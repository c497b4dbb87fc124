//! `vnetprobe listen`: the responder that peer checks on other nodes talk to. It answers the
//! echo of `net::echo` on TCP and UDP ports, rate-limited per source, logs every peer it
//! answered, and stops by itself at its deadline unless told to run forever.

mod rate;
mod udp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Mutex, Semaphore};

use crate::catalog::peer::parse_ports;
use crate::cli::{ListenArgs, parse_duration};
use crate::context::ConfigFile;
use crate::net::echo::{self, Key, Refusal, Transport};
use crate::plan::UsageError;
use crate::settings::{self, Layers};
pub use rate::Limiter;

/// How long a forgotten responder stays open.
pub const DEFAULT_FOR: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_RATE: u32 = 10;
/// TCP connections served at once; more are closed at once.
const CONNECTIONS_CAP: usize = 128;
/// How long a TCP peer has to send its request, and to take the reply.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(5);
/// How often dropped requests are summed up in the log.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Everything the responder runs on, validated.
#[derive(Debug)]
pub struct Settings {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub key: Option<Key>,
    /// None: forever.
    pub deadline: Option<Duration>,
    pub rate: u32,
    pub address: IpAddr,
    /// The name echoes carry: this host's name.
    pub name: String,
}

impl Settings {
    /// Flags over the config file's `[listen]` table over defaults; errors name the flag or
    /// the file, line and field.
    pub fn resolve(args: &ListenArgs) -> Result<Settings, UsageError> {
        let file = ConfigFile::load(args.config.as_deref())?;
        let section = file.listen.as_ref();
        let ports = |field: &str, flag: &Option<String>, from_file| {
            Layers::new(|raw: String| parse_ports(&raw))
                .given(settings::flag(&format!("--{field}"), flag.clone()))
                .given(file.at(&format!("listen.{field}"), from_file))
                .or(Vec::new())
                .map(|ports| ports.value)
        };
        let tcp = ports("tcp", &args.tcp, section.and_then(|l| l.tcp.as_ref()))?;
        let udp = ports("udp", &args.udp, section.and_then(|l| l.udp.as_ref()))?;
        if tcp.is_empty() && udp.is_empty() {
            return Err(UsageError(
                "listen needs ports: --tcp PORTS and/or --udp PORTS (e.g. --tcp 445,44224 --udp 5831), \
                 or tcp/udp in the [listen] table of the config file"
                    .into(),
            ));
        }
        if tcp.len() + udp.len() > crate::catalog::peer::PORTS_CAP {
            return Err(UsageError(format!(
                "--tcp and --udp: more than {} ports in all",
                crate::catalog::peer::PORTS_CAP
            )));
        }
        let key = Layers::new(Ok)
            .checked(settings::flag("--key-file", args.key_file.clone()))
            .checked(file.at("listen.key-file", section.and_then(|l| l.key_file.as_ref())))
            .optional()?
            .map(|path| path.load(|p| Key::load(p)))
            .transpose()?;
        let forever = Layers::new(Ok)
            .checked(settings::flag("--forever", args.forever.then_some(true)))
            // `--for` ends a forever of the file.
            .checked(settings::flag("--for", args.for_.map(|_| false)))
            .checked(file.at("listen.forever", section.and_then(|l| l.forever.as_ref())))
            .or(false)?;
        let deadline = Layers::new(|raw: String| parse_duration(&raw))
            .checked(settings::flag("--for", args.for_))
            .given(file.at("listen.for", section.and_then(|l| l.for_.as_ref())))
            .or(DEFAULT_FOR)?;
        let rate = Layers::new(|r: u32| {
            (1..=10_000)
                .contains(&r)
                .then_some(r)
                .ok_or_else(|| "1 to 10000 replies per second".to_string())
        })
        .checked(settings::flag("--rate", args.rate))
        .given(file.at("listen.rate", section.and_then(|l| l.rate.as_ref())))
        .or(DEFAULT_RATE)?;
        let address =
            Layers::new(|raw: String| raw.parse().map_err(|_| "not an IP address".to_string()))
                .checked(settings::flag("--address", args.address))
                .given(file.at("listen.address", section.and_then(|l| l.address.as_ref())))
                .or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
        let name = crate::context::node_name().unwrap_or_else(|| "vnetprobe".into());
        Ok(Settings {
            tcp,
            udp,
            key,
            deadline: (!forever.value).then_some(deadline.value),
            rate: rate.value,
            address: address.value,
            name,
        })
    }
}

/// What every socket task shares.
struct Shared {
    key: Option<Key>,
    name: String,
    limiter: Mutex<Limiter>,
    dropped: AtomicU64,
    connections: Arc<Semaphore>,
}

/// Binds every port, then answers until the deadline or a signal. Binding errors name the port.
pub async fn run(s: Settings) -> Result<(), String> {
    let mut tcp = Vec::new();
    for &port in &s.tcp {
        let addr = SocketAddr::new(s.address, port);
        tcp.push((
            port,
            TcpListener::bind(addr)
                .await
                .map_err(|e| bind_error("--tcp", addr, &e))?,
        ));
    }
    let mut udp = Vec::new();
    for &port in &s.udp {
        let addr = SocketAddr::new(s.address, port);
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error("--udp", addr, &e))?;
        udp::enable_pktinfo(&socket).map_err(|e| bind_error("--udp", addr, &e))?;
        udp.push((port, socket));
    }
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared {
        key: s.key.clone(),
        name: s.name.clone(),
        limiter: Mutex::new(Limiter::new(s.rate)),
        dropped: AtomicU64::new(0),
        connections: Arc::new(Semaphore::new(CONNECTIONS_CAP)),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (port, l) in tcp {
        tasks.spawn(serve_tcp(l, port, shared.clone()));
    }
    for (port, u) in udp {
        tasks.spawn(serve_udp(u, port, shared.clone()));
    }
    let list = |t: &str, ports: &[u16]| {
        (!ports.is_empty()).then(|| {
            let p: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!("{t}/{}", p.join(","))
        })
    };
    let ports: Vec<String> = [list("tcp", &s.tcp), list("udp", &s.udp)]
        .into_iter()
        .flatten()
        .collect();
    let until = match s.deadline {
        Some(d) => format!(
            "until {} ({}; --forever to keep answering)",
            crate::report::rfc3339(std::time::SystemTime::now() + d),
            humantime::format_duration(d)
        ),
        None => "until stopped (--forever)".into(),
    };
    log::info!(
        "listening on {} at {} as {:?} {until}; key: {}; rate: {}/s per source",
        ports.join(" "),
        s.address,
        s.name,
        if s.key.is_some() {
            "yes (HMAC-SHA256)"
        } else {
            "none: echoes are not authenticated"
        },
        s.rate
    );
    let sleep = async {
        match s.deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let mut report = tokio::time::interval(DROP_REPORT_EVERY);
    report.tick().await;
    loop {
        tokio::select! {
            _ = &mut sleep => {
                log::info!("deadline of {} reached: stopping (use --forever to keep answering)",
                    humantime::format_duration(s.deadline.unwrap_or_default()));
                break;
            }
            _ = term.recv() => { log::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { log::info!("SIGINT: stopping"); break; }
            _ = report.tick() => log_dropped(&shared),
            Some(done) = tasks.join_next() => {
                if let Ok(Err(e)) = done {
                    return Err(e);
                }
            }
        }
    }
    log_dropped(&shared);
    tasks.abort_all();
    Ok(())
}

fn bind_error(flag: &str, addr: SocketAddr, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE: run the vnetprobe-listen unit, \
             or pick a port from 1024 up)"
                .to_string()
        }
        std::io::ErrorKind::AddrInUse => "the port is in use by another program".into(),
        _ => e.to_string(),
    };
    format!("{flag}: cannot listen on {addr}: {why}")
}

fn log_dropped(shared: &Shared) {
    let n = shared.dropped.swap(0, Ordering::Relaxed);
    if n > 0 {
        log::warn!(
            "rate limit: {n} requests not answered (more than the rate per source, or too many connections)"
        );
    }
}

async fn allowed(shared: &Shared, ip: IpAddr) -> bool {
    let ok = shared.limiter.lock().await.allow(ip, Instant::now());
    if !ok {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
    ok
}

/// What became of one request, logged as one line per answered peer.
fn log_answer(
    t: Transport,
    port: u16,
    from: SocketAddr,
    result: &Result<Vec<u8>, (Refusal, Option<Vec<u8>>)>,
    keyed: bool,
) {
    match result {
        Ok(_) => log::info!(
            "answered {}/{port} from {from} ({})",
            t.as_str(),
            if keyed {
                "signed echo"
            } else {
                "unsigned echo: no key"
            }
        ),
        Err((Refusal::Unauthenticated, _)) => log::warn!(
            "refused {}/{port} from {from}: the request is not signed with this responder's key",
            t.as_str()
        ),
        Err((why, _)) => log::debug!("ignored {}/{port} from {from}: {why:?} request", t.as_str()),
    }
}

/// The reply to one request, if it gets one within the rate limit, and what to log once it is
/// sent; requests that get no reply are logged here.
async fn respond(
    shared: &Shared,
    t: Transport,
    port: u16,
    from: SocketAddr,
    req: &[u8],
) -> Option<(Vec<u8>, impl FnOnce() + use<>)> {
    let result = echo::answer(req, shared.key.as_ref(), t, port, &shared.name);
    let keyed = shared.key.is_some();
    let reply = match &result {
        Ok(r) | Err((Refusal::Unauthenticated, Some(r))) => r.clone(),
        Err(_) => {
            log_answer(t, port, from, &result, keyed);
            return None;
        }
    };
    if !allowed(shared, from.ip()).await {
        return None;
    }
    Some((reply, move || log_answer(t, port, from, &result, keyed)))
}

async fn serve_udp(socket: UdpSocket, port: u16, shared: Arc<Shared>) -> Result<(), String> {
    // One byte more than a request, so an over-long datagram is seen as such.
    let mut buf = [0u8; echo::REQUEST_LEN + 1];
    loop {
        let (n, from, to) = match udp::recv(&socket, &mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier replies surface here on some kernels: not fatal.
            Err(_) => continue,
        };
        let Some((reply, sent)) = respond(&shared, Transport::Udp, port, from, &buf[..n]).await
        else {
            continue;
        };
        debug_assert!(reply.len() <= n, "a reply is never larger than its request");
        match udp::send(&socket, &reply, from, to).await {
            Ok(_) => sent(),
            Err(e) => log::debug!("udp/{port}: reply to {from} failed: {e}"),
        }
    }
}

async fn serve_tcp(listener: TcpListener, port: u16, shared: Arc<Shared>) -> Result<(), String> {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                log::warn!("tcp/{port}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ =
                tokio::time::timeout(EXCHANGE_DEADLINE, exchange_tcp(stream, port, from, &shared))
                    .await;
        });
    }
}

async fn exchange_tcp(mut stream: TcpStream, port: u16, from: SocketAddr, shared: &Shared) {
    let mut req = [0u8; echo::REQUEST_LEN];
    if stream.read_exact(&mut req).await.is_err() {
        log::debug!("tcp/{port}: {from} closed before a whole request");
        return;
    }
    let Some((reply, sent)) = respond(shared, Transport::Tcp, port, from, &req).await else {
        return;
    };
    if stream.write_all(&reply).await.is_ok() {
        let _ = stream.shutdown().await;
        sent();
    }
}
