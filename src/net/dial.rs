//! TCP connections with a deadline over a list of addresses, and the OS errors mapped to the
//! error kinds an operator can act on.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use crate::outcome::{ErrorKind, ProbeError};

/// Maps an OS error from connect/send/recv to an error kind.
pub fn classify_io(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ErrorKind::TcpRefused,
        Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EADDRNOTAVAIL) => {
            ErrorKind::NetUnreachable
        }
        Some(libc::EPERM) | Some(libc::EACCES) => ErrorKind::LocalFirewall,
        Some(libc::ETIMEDOUT) => ErrorKind::TcpTimeout,
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::TcpRefused,
            io::ErrorKind::TimedOut => ErrorKind::TcpTimeout,
            io::ErrorKind::PermissionDenied => ErrorKind::LocalFirewall,
            _ => ErrorKind::Io,
        },
    }
}

/// A human phrase for an OS error, with the reasons the OS does not spell out.
pub fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            format!("{e} (this host's own firewall rejected the packet)")
        }
        Some(libc::EHOSTUNREACH) => {
            format!("{e} (no route, or an ICMP host-unreachable came back)")
        }
        _ => e.to_string(),
    }
}

fn socket_for(addr: &SocketAddr) -> io::Result<TcpSocket> {
    // Non-blocking from the start (SOCK_NONBLOCK): no fcntl round trips per connection.
    let socket = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM.nonblocking(),
        Some(SockProtocol::TCP),
    )?;
    Ok(TcpSocket::from_std_stream(socket.into()))
}

/// Connects to the first address that answers before `deadline`; each address gets an equal
/// share of the time that is left. On failure, the error of the last address tried.
pub async fn connect_any(
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ProbeError> {
    let start = Instant::now();
    let mut last = ProbeError::new(ErrorKind::NetUnreachable, "no address to connect to");
    for (i, ip) in addrs.iter().enumerate() {
        let addr = SocketAddr::new(*ip, port);
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let share = left / (addrs.len() - i) as u32;
        match connect_one(addr, share).await {
            Ok(s) => return Ok((s, addr)),
            Err(e) => last = e,
        }
    }
    if addrs.len() > 1 {
        last.message = format!("{} (tried {} addresses)", last.message, addrs.len());
    }
    Err(last)
}

/// Sends small writes at once (what curl does): for a stream that carries an exchange (TLS,
/// HTTP, a CONNECT, an echo), not for a TCP probe that only connects.
pub fn no_delay(stream: &TcpStream) -> Result<(), ProbeError> {
    stream
        .set_nodelay(true)
        .map_err(|e| ProbeError::new(classify_io(&e), describe_io(&e)))
}

/// Connects to one address within `timeout`.
pub async fn connect_one(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let socket =
        socket_for(&addr).map_err(|e| ProbeError::new(classify_io(&e), describe_io(&e)))?;
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => {
            let kind = classify_io(&e);
            Err(ProbeError::new(
                kind,
                format!("{addr}: {}", describe_io(&e)),
            ))
        }
        Err(_) => Err(ProbeError::new(
            ErrorKind::TcpTimeout,
            format!(
                "{addr}: no answer within {} ms (dropped by a firewall or NSG?)",
                timeout.as_millis()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_kinds() {
        let table = [
            (libc::ECONNREFUSED, ErrorKind::TcpRefused),
            (libc::ENETUNREACH, ErrorKind::NetUnreachable),
            (libc::EHOSTUNREACH, ErrorKind::NetUnreachable),
            (libc::EPERM, ErrorKind::LocalFirewall),
            (libc::EACCES, ErrorKind::LocalFirewall),
            (libc::ETIMEDOUT, ErrorKind::TcpTimeout),
            (libc::EIO, ErrorKind::Io),
        ];
        for (errno, kind) in table {
            assert_eq!(
                classify_io(&io::Error::from_raw_os_error(errno)),
                kind,
                "errno {errno}"
            );
        }
        assert!(describe_io(&io::Error::from_raw_os_error(libc::EPERM)).contains("own firewall"));
    }
}
