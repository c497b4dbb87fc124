//! Hostile clients of `vnetprobe serve` and the scrapers beside them, on loopback: reconnecting
//! slowloris from chosen source addresses, and a scraper that waits between its handshake and
//! its request. Shared by the attack tests (tests/serve_attack.rs) and benches/attack_bench.rs,
//! which includes this file by path; std, socket2 and rustls only.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No attack outlives this, whatever its owner does.
const ATTACK_LIMIT: Duration = Duration::from_secs(120);

/// A TCP connection from `source` (port chosen by the kernel) to `target`.
pub fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let domain = match source {
        IpAddr::V4(_) => socket2::Domain::IPV4,
        IpAddr::V6(_) => socket2::Domain::IPV6,
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&target.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// Connections that send `partial` (an unfinished request head, or nothing before TLS) and hold
/// still; each one the server closes is opened again at once. Stopped on drop.
pub struct Slowloris {
    stop: Arc<AtomicBool>,
    connects: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Slowloris {
    /// `per_source` connections from each of `sources` (a thread per source).
    pub fn start(
        target: SocketAddr,
        sources: &[IpAddr],
        per_source: usize,
        partial: &'static [u8],
    ) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads = sources
            .iter()
            .map(|&source| {
                let (stop, connects) = (stop.clone(), connects.clone());
                thread::spawn(move || {
                    let mut held: Vec<Option<TcpStream>> = (0..per_source).map(|_| None).collect();
                    let mut byte = [0u8; 512];
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < ATTACK_LIMIT {
                        let mut reopened = false;
                        for slot in held.iter_mut() {
                            if let Some(s) = slot {
                                match s.read(&mut byte) {
                                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                                    // A 408 or an alert: the close follows.
                                    Ok(n) if n > 0 => continue,
                                    _ => *slot = None,
                                }
                            }
                            let Ok(mut s) = connect_from(source, target) else {
                                continue;
                            };
                            connects.fetch_add(1, Ordering::Relaxed);
                            let _ = s.write_all(partial);
                            let _ = s.set_nonblocking(true);
                            *slot = Some(s);
                            reopened = true;
                        }
                        if !reopened {
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        Slowloris {
            stop,
            connects,
            threads,
            started,
        }
    }

    /// Connections opened per second so far.
    pub fn rate(&self) -> f64 {
        self.connects.load(Ordering::Relaxed) as f64 / self.started.elapsed().as_secs_f64()
    }

    /// Waits (bounded) until the attack has opened `n` connections.
    pub fn wait_for_connects(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.connects.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How a scraper speaks to the daemon.
#[derive(Clone)]
pub enum Wire {
    Plain,
    /// TLS to `localhost`, trusting the given client config's roots.
    Tls(Arc<rustls::ClientConfig>),
}

/// One scrape: connect from `source`, finish the TLS handshake if any, wait `delay`, send
/// `GET path` (with `auth` as the Authorization header), read the answer to its end. The HTTP
/// status, or what went wrong.
pub fn scrape(
    target: SocketAddr,
    source: IpAddr,
    wire: &Wire,
    delay: Duration,
    path: &str,
    auth: Option<&str>,
) -> Result<u16, String> {
    let tcp = connect_from(source, target).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n");
    let raw = match wire {
        Wire::Plain => {
            thread::sleep(delay);
            exchange(tcp, request.as_bytes())
        }
        Wire::Tls(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            while tls.conn.is_handshaking() {
                tls.conn
                    .complete_io(&mut tls.sock)
                    .map_err(|e| format!("TLS handshake: {e}"))?;
            }
            thread::sleep(delay);
            exchange(tls, request.as_bytes())
        }
    }?;
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| text.starts_with("HTTP/1."))
        .ok_or_else(|| format!("no HTTP answer: {:?}", &text[..text.len().min(80)]))
}

fn exchange(mut stream: impl Read + Write, request: &[u8]) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    match stream.take(16 << 20).read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify after a whole answer.
        Err(_) if raw.starts_with(b"HTTP/1.") => Ok(raw),
        Err(e) => Err(format!("{e} after {} bytes", raw.len())),
    }
}

/// Requests sent all at once, `per_source` from each of `sources`, each on its own connection,
/// then read to their ends: a flood of wrong passwords, for instance.
pub struct Flood {
    threads: Vec<JoinHandle<Vec<u16>>>,
    sent: Arc<AtomicU64>,
    total: u64,
}

impl Flood {
    pub fn start(target: SocketAddr, sources: &[IpAddr], per_source: usize, auth: &str) -> Flood {
        let sent = Arc::new(AtomicU64::new(0));
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n"
        );
        let threads = sources
            .iter()
            .map(|&source| {
                let (sent, request) = (sent.clone(), request.clone());
                thread::spawn(move || {
                    let streams: Vec<Option<TcpStream>> = (0..per_source)
                        .map(|_| {
                            let mut s = connect_from(source, target).ok()?;
                            s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
                            s.write_all(request.as_bytes()).ok()?;
                            sent.fetch_add(1, Ordering::Relaxed);
                            Some(s)
                        })
                        .collect();
                    streams
                        .into_iter()
                        .map(|s| {
                            let mut raw = Vec::new();
                            if let Some(s) = s {
                                let _ = s.take(1 << 20).read_to_end(&mut raw);
                            }
                            let text = String::from_utf8_lossy(&raw);
                            text.split(' ')
                                .nth(1)
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0)
                        })
                        .collect()
                })
            })
            .collect();
        Flood {
            threads,
            sent,
            total: (sources.len() * per_source) as u64,
        }
    }

    /// Waits (bounded) until every request of the flood is sent.
    pub fn wait_sent(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sent.load(Ordering::Relaxed) < self.total && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every answer's status (0: none), once all have come.
    pub fn answers(self) -> Vec<u16> {
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect()
    }
}
