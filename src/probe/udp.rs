//! The UDP probe: one datagram on a connected socket, then a bounded wait for a reply or an
//! ICMP error. UDP has no handshake, so silence proves nothing: it is "open|filtered", never
//! "open". Raw UDP is always direct, never through a proxy.
//!
//! Which address: the first resolved address this host has a route to. A real client (the Azure
//! ML node agent) sends to one address too, and waiting out the silence of every address would
//! multiply the wait; addresses without a route (say, IPv6 on an IPv4-only VNet) are skipped
//! with a warning, since they say nothing about the target.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::UdpSocket;

use super::Dest;
use super::{ErrorKind, Evidence, Phase, ProbeEnv, ProbeError};
use crate::catalog::Expect;
use crate::net::dial;

/// The largest reply read; a longer datagram is truncated, which is fine: any reply answers.
const REPLY_CAP: usize = 2048;

/// What came back within the wait.
#[derive(Debug, PartialEq)]
enum Heard {
    Reply(usize),
    Silence,
}

/// Sends `payload` to `dest`; silence passes only a target that expects the path blocked.
pub async fn probe(
    dest: Dest<'_>,
    payload: &[u8],
    expect: Expect,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let port = dest.port;
    let resolved = super::resolve(dest.host, env, ev).await?;
    let wait = super::remaining(env);
    let result = send_and_wait(&resolved.addrs, port, payload, wait, ev).await;
    ev.note("direct");
    let heard = result?;
    let waited = wait.as_millis();
    match heard {
        Heard::Reply(n) => ev.note(format!("answered ({n} bytes)")),
        // Only an answer proves a UDP path open, so for a path that should be blocked silence
        // is the expected result, not a sign that it is reachable.
        Heard::Silence if expect == Expect::Blocked => {
            return Err(ProbeError::new(
                ErrorKind::Timeout,
                format!(
                    "no reply within {waited} ms (open|filtered: nothing proves the path open)"
                ),
            ));
        }
        Heard::Silence => {
            ev.note(format!(
                "open|filtered: no reply and no rejection within {waited} ms"
            ));
            ev.unverified = Some(
                "silence is all a node sees of an open UDP port and of an NSG or firewall drop alike: \
                 only an ICMP rejection proves a block, and nothing documented answers"
                    .into(),
            );
        }
    }
    Ok(())
}

async fn send_and_wait(
    addrs: &[IpAddr],
    port: u16,
    payload: &[u8],
    wait: Duration,
    ev: &mut Evidence,
) -> Result<Heard, ProbeError> {
    let (socket, peer) = open(addrs, port, ev)?;
    ev.peer = Some(peer);
    let start = Instant::now();
    let result = exchange(&socket, payload, wait).await;
    ev.phase(Phase::Wait, start.elapsed());
    result.map_err(|e| classify(&e, peer))
}

/// A socket connected to the first address with a route. Connecting a UDP socket sends
/// nothing; it fixes the peer so the kernel reports that peer's ICMP errors to us.
pub(crate) fn open(
    addrs: &[IpAddr],
    port: u16,
    ev: &mut Evidence,
) -> Result<(UdpSocket, SocketAddr), ProbeError> {
    let mut last = ProbeError::new(ErrorKind::NetUnreachable, "no address to send to");
    for ip in addrs {
        let peer = SocketAddr::new(*ip, port);
        match connect(peer) {
            Ok(socket) => return Ok((socket, peer)),
            Err(e) => {
                last = classify(&e, peer);
                if last.kind != ErrorKind::NetUnreachable {
                    break;
                }
                ev.warnings.push(format!("skipped {}", last.message));
            }
        }
    }
    Err(last)
}

fn connect(peer: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(peer),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    socket.connect(&peer.into())?;
    UdpSocket::from_std(socket.into())
}

/// Sends the payload and waits for one datagram. An ICMP error is sticky and surfaces on the
/// next syscall, so it may come from `send` as well as from `recv`.
async fn exchange(socket: &UdpSocket, payload: &[u8], wait: Duration) -> io::Result<Heard> {
    socket.send(payload).await?;
    let mut buf = [0u8; REPLY_CAP];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(Heard::Reply(n)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Heard::Silence),
    }
}

/// The OS errors of a connected UDP socket, as the operator reads them.
pub(crate) fn classify(e: &io::Error, peer: SocketAddr) -> ProbeError {
    let port = peer.port();
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ProbeError::new(
            ErrorKind::UdpRejected,
            format!(
                "{peer}: ICMP port unreachable: nothing listens on UDP {port} there, or a firewall rejects it"
            ),
        ),
        _ => {
            let kind = match dial::classify_io(e) {
                ErrorKind::TcpRefused => ErrorKind::UdpRejected,
                ErrorKind::TcpTimeout => ErrorKind::Timeout,
                other => other,
            };
            ProbeError::new(kind, format!("{peer}: {}", dial::describe_io(e)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_udp_kinds() {
        let peer: SocketAddr = "127.0.0.1:5831".parse().unwrap();
        for (errno, kind) in [
            (libc::ECONNREFUSED, ErrorKind::UdpRejected),
            (libc::EPERM, ErrorKind::LocalFirewall),
            (libc::EACCES, ErrorKind::LocalFirewall),
            (libc::ENETUNREACH, ErrorKind::NetUnreachable),
            (libc::EHOSTUNREACH, ErrorKind::NetUnreachable),
            (libc::ETIMEDOUT, ErrorKind::Timeout),
        ] {
            let e = classify(&io::Error::from_raw_os_error(errno), peer);
            assert_eq!(e.kind, kind, "errno {errno}");
            assert!(e.message.starts_with("127.0.0.1:5831: "), "{}", e.message);
        }
    }
}
