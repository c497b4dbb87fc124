//! Path tracing without privileges: the protocol's own first packet (a SYN through `connect`,
//! or the UDP payload) on an ordinary socket with TTL 1, 2, ... and `IP_RECVERR` /
//! `IPV6_RECVERR`, so each router's ICMP time exceeded arrives on that socket's error queue.
//! No raw socket and no capability.
//!
//! The kernel: UDP sockets have queued ICMP errors with `IP_RECVERR` since Linux 2.2; a TCP
//! socket queues them only in SYN_SENT (and SYN_RECV), since Linux 5.8 (commit 45af29ca761c,
//! "tcp: allow traceroute -Mtcp for unpriv users", May 2020, IPv4 and IPv6). There the ICMP
//! also aborts the connect with EHOSTUNREACH (a 2023 change that kept SYN_SENT open on some
//! ICMP, 0a8de364ff7a, was reverted in b59db45d7eba, and tried again in 2024), and a 2024 fix
//! made the IPv4 side queue only when IP_RECVERR is set, as IPv6 always did. This module reads
//! the error queue whether or not the connect was aborted, so it holds under either behaviour.
//!
//! Each answer names the hop by the ICMP's source address, which any router may choose: it is
//! shown, never trusted for anything else.

use std::collections::BTreeMap;
use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::outcome::{Hop, HopKind, Trace, TraceEnd};

/// The default highest TTL.
pub const DEFAULT_MAX_TTL: u8 = 16;
/// The largest TTL a trace may be asked for.
pub const MAX_TTL: u8 = 64;
/// TTLs sent together: a few at a time, so an open path sees only a few connections.
const WINDOW: u8 = 4;
/// The largest UDP reply read (any reply answers).
const REPLY_CAP: usize = 512;

/// Which first packet a trace sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probe {
    /// A TCP SYN, through a non-blocking `connect`.
    Tcp,
    /// One UDP datagram with this payload.
    Udp(Vec<u8>),
}

impl Probe {
    pub fn label(&self) -> &'static str {
        match self {
            Probe::Tcp => "tcp",
            Probe::Udp(_) => "udp",
        }
    }
}

/// What one TTL's probe came back with.
#[derive(Debug)]
enum Answer {
    Hop(Hop),
    Silent,
    /// EPERM/EACCES on connect or send: this host's own filter.
    Local,
    /// Another local error (no route, no socket): the trace cannot use this TTL.
    Failed(io::Error),
}

/// Traces `to` with TTL 1..=`max_ttl`, within `budget`. TTLs go out `WINDOW` at a time; the
/// next window leaves when every probe of the current one was answered, or when its share of
/// the budget is over (each probe waits at most that share, so a trace never holds more than
/// `WINDOW` sockets). Sending stops at the first TTL the destination answers or a hop rejects.
pub async fn trace(to: SocketAddr, probe: &Probe, max_ttl: u8, budget: Duration) -> Trace {
    let start = Instant::now();
    let max_ttl = max_ttl.clamp(1, MAX_TTL);
    let windows = max_ttl.div_ceil(WINDOW) as u32;
    let share = budget / windows.max(1);
    let probe = Arc::new(probe.clone());
    let mut answers: BTreeMap<u8, Answer> = BTreeMap::new();
    let mut next: u8 = 1;
    let mut set = JoinSet::new();
    let mut errors = Vec::new();
    loop {
        let ending = terminal(&answers);
        if set.is_empty() {
            let done = ending.is_some() || next > max_ttl || start.elapsed() >= budget;
            if done {
                break;
            }
            let last = (next + WINDOW - 1).min(max_ttl);
            let wait = share.min(budget.saturating_sub(start.elapsed()));
            for ttl in next..=last {
                let probe = probe.clone();
                set.spawn(async move { (ttl, probe_ttl(to, &probe, ttl, wait).await) });
            }
            next = last + 1;
        }
        match set.join_next().await {
            Some(Ok((ttl, answer))) => {
                if let Answer::Failed(e) = &answer {
                    errors.push(format!("TTL {ttl}: {e}"));
                }
                answers.insert(ttl, answer);
            }
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
        // A terminal answer below every pending TTL makes the pending ones moot.
        if let Some(t) = terminal(&answers)
            && (1..t).all(|ttl| answers.contains_key(&ttl))
        {
            set.abort_all();
            break;
        }
    }
    for e in errors.iter().take(1) {
        log::debug!("trace of {to}: {e}");
    }
    let probed = answers.keys().copied().max().unwrap_or(0).max(next - 1);
    build(to, probe.label(), probed, answers, start.elapsed())
}

/// The lowest TTL whose answer ends the path: the destination, or an unreachable.
fn terminal(answers: &BTreeMap<u8, Answer>) -> Option<u8> {
    answers.iter().find_map(|(ttl, a)| match a {
        Answer::Hop(h) if h.kind != HopKind::TimeExceeded => Some(*ttl),
        _ => None,
    })
}

/// The trace's verdict from its answers.
fn build(
    to: SocketAddr,
    protocol: &str,
    probed: u8,
    answers: BTreeMap<u8, Answer>,
    took: Duration,
) -> Trace {
    let end_ttl = terminal(&answers);
    let local = answers.values().any(|a| matches!(a, Answer::Local));
    let hops: Vec<Hop> = answers
        .into_values()
        .filter_map(|a| match a {
            Answer::Hop(h) => Some(h),
            _ => None,
        })
        .filter(|h| end_ttl.is_none_or(|t| h.ttl <= t))
        .collect();
    let (ended, at) = match hops.last() {
        Some(h) if h.kind == HopKind::Reply => (TraceEnd::Destination, Some(h.clone())),
        // A port unreachable from the destination itself: the host was reached and says no
        // one listens (UDP), which is an answer from the destination, not a firewall's.
        Some(h)
            if h.kind == HopKind::Unreachable && h.address == to.ip() && is_port_unreachable(h) =>
        {
            (TraceEnd::Destination, Some(h.clone()))
        }
        Some(h) if h.kind == HopKind::Unreachable => (TraceEnd::Rejected, Some(h.clone())),
        Some(h) => (TraceEnd::SilentAfterHop, Some(h.clone())),
        None if local => (TraceEnd::LocalFirewall, None),
        None => (TraceEnd::NoHopAnswered, None),
    };
    let summary = summary(ended, at.as_ref(), &hops, probed, to);
    Trace {
        protocol: protocol.to_string(),
        to,
        probed_ttl: probed,
        hops,
        ended,
        at,
        duration_ms: (took.as_secs_f64() * 100_000.0).round() / 100.0,
        summary,
    }
}

fn is_port_unreachable(h: &Hop) -> bool {
    matches!(
        (h.address, h.icmp_type, h.icmp_code),
        (IpAddr::V4(_), Some(3), Some(3)) | (IpAddr::V6(_), Some(1), Some(4))
    )
}

/// The table's one line: never more than the answers say.
fn summary(
    ended: TraceEnd,
    at: Option<&Hop>,
    answered: &[Hop],
    probed: u8,
    to: SocketAddr,
) -> String {
    let hops = match answered.len() {
        1 => "1 hop answered".to_string(),
        n => format!("{n} hops answered"),
    };
    match (ended, at) {
        (TraceEnd::Destination, Some(h)) => format!(
            "{hops}, reached the destination {} at hop {} ({})",
            h.address, h.ttl, h.meaning
        ),
        // A router that filters what it forwards answers time exceeded for the TTL that runs
        // out there, and rejects the next TTL: name it by the hop it answered as first.
        (TraceEnd::Rejected, Some(h)) => match answered
            .iter()
            .find(|e| e.address == h.address && e.ttl < h.ttl)
        {
            Some(first) => format!(
                "{hops}, rejected by hop {} {} (the TTL {} probe): {}",
                first.ttl, h.address, h.ttl, h.meaning
            ),
            None => format!(
                "{hops}, rejected by hop {} {}: {}",
                h.ttl, h.address, h.meaning
            ),
        },
        (TraceEnd::SilentAfterHop, Some(h)) => format!(
            "{hops}, silent after hop {} {} (TTL {}-{probed} unanswered)",
            h.ttl,
            h.address,
            h.ttl + 1
        ),
        (TraceEnd::LocalFirewall, _) => {
            "this host's own firewall refused the probes before they left".to_string()
        }
        _ => format!(
            "no hop answered (TTL 1-{probed} toward {to}): dropped before the first hop that answers"
        ),
    }
}

/// What an ICMP type and code mean (RFC 792, RFC 1812, RFC 4443).
pub fn icmp_meaning(v6: bool, icmp_type: u8, code: u8) -> String {
    let text = match (v6, icmp_type, code) {
        (false, 11, 0) | (true, 3, 0) => "time exceeded",
        (false, 3, 0) => "network unreachable",
        (false, 3, 1) => "host unreachable",
        (false, 3, 2) => "protocol unreachable",
        (false, 3, 3) => "port unreachable",
        (false, 3, 4) => "fragmentation needed",
        (false, 3, 5) => "source route failed",
        (false, 3, 6) => "destination network unknown",
        (false, 3, 7) => "destination host unknown",
        (false, 3, 9) => "network administratively prohibited",
        (false, 3, 10) => "host administratively prohibited",
        (false, 3, 11) | (false, 3, 12) => "unreachable for the type of service",
        (false, 3, 13) => "communication administratively prohibited",
        (false, 3, 14) => "host precedence violation",
        (false, 3, 15) => "precedence cutoff",
        (true, 1, 0) => "no route to destination",
        (true, 1, 1) => "communication administratively prohibited",
        (true, 1, 2) => "beyond the scope of the source address",
        (true, 1, 3) => "address unreachable",
        (true, 1, 4) => "port unreachable",
        (true, 1, 5) => "source address failed ingress/egress policy",
        (true, 1, 6) => "reject route to destination",
        _ => "",
    };
    let family = if v6 { "ICMPv6" } else { "ICMP" };
    match text {
        "" => format!("{family} type {icmp_type} code {code}"),
        t => format!("{t} ({family} type {icmp_type} code {code})"),
    }
}

/// One TTL: a fresh socket, the first packet, and the first answer within `wait`.
async fn probe_ttl(to: SocketAddr, probe: &Probe, ttl: u8, wait: Duration) -> Answer {
    let sent = Instant::now();
    let deadline = sent + wait;
    let socket = match open(to, probe, ttl) {
        Ok(s) => s,
        Err(e) => return local_or_failed(e),
    };
    let interest = Interest::READABLE | Interest::WRITABLE | Interest::ERROR;
    // SAFETY: the AsyncFd owns the socket, so the fd stays open while it is registered.
    let fd = match unsafe { AsyncFd::register_with_interest(socket, interest) } {
        Ok(fd) => fd,
        Err(e) => return Answer::Failed(io::Error::other(e.to_string())),
    };
    if let Probe::Udp(payload) = probe
        && let Err(e) = fd.get_ref().send(payload)
    {
        return match read_error_queue(fd.get_ref(), to, ttl, sent) {
            Some(hop) => Answer::Hop(hop),
            None => local_or_failed(e),
        };
    }
    loop {
        let interest = match probe {
            Probe::Tcp => Interest::WRITABLE | Interest::ERROR,
            Probe::Udp(_) => Interest::READABLE | Interest::ERROR,
        };
        let mut ready = match tokio::time::timeout_at(deadline, fd.ready(interest)).await {
            Err(_) => return Answer::Silent,
            Ok(Err(e)) => return Answer::Failed(e),
            Ok(Ok(r)) => r,
        };
        let socket = fd.get_ref();
        if let Some(hop) = read_error_queue(socket, to, ttl, sent) {
            return Answer::Hop(hop);
        }
        match probe {
            Probe::Tcp => match socket.take_error() {
                Ok(Some(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    return Answer::Hop(reply(to, ttl, sent, "TCP reset"));
                }
                Ok(Some(e)) => return local_or_failed(e),
                Ok(None) if socket.peer_addr().is_ok() => {
                    return Answer::Hop(reply(to, ttl, sent, "SYN-ACK: connection accepted"));
                }
                Ok(None) => {}
                Err(e) => return Answer::Failed(e),
            },
            Probe::Udp(_) => {
                let mut buf = [MaybeUninit::<u8>::uninit(); REPLY_CAP];
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        return Answer::Hop(reply(
                            to,
                            ttl,
                            sent,
                            &format!("UDP reply ({n} bytes)"),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The ICMP's errno (EHOSTUNREACH, ECONNREFUSED) came first: the queue
                    // entry is read on the next turn.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EHOSTUNREACH | libc::ECONNREFUSED | libc::ENETUNREACH)
                        ) => {}
                    Err(e) => return local_or_failed(e),
                }
            }
        }
        ready.clear_ready();
    }
}

fn local_or_failed(e: io::Error) -> Answer {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => Answer::Local,
        _ => Answer::Failed(e),
    }
}

fn reply(to: SocketAddr, ttl: u8, sent: Instant, meaning: &str) -> Hop {
    Hop {
        ttl,
        address: to.ip(),
        rtt_ms: rtt(sent),
        kind: HopKind::Reply,
        icmp_type: None,
        icmp_code: None,
        meaning: meaning.to_string(),
    }
}

fn rtt(sent: Instant) -> f64 {
    (sent.elapsed().as_secs_f64() * 100_000.0).round() / 100.0
}

/// A non-blocking socket with the TTL set and ICMP errors queued; TCP is connecting.
fn open(to: SocketAddr, probe: &Probe, ttl: u8) -> io::Result<Socket> {
    let kind = match probe {
        Probe::Tcp => (Type::STREAM, SockProtocol::TCP),
        Probe::Udp(_) => (Type::DGRAM, SockProtocol::UDP),
    };
    let socket = Socket::new(Domain::for_address(to), kind.0.nonblocking(), Some(kind.1))?;
    let on: libc::c_int = 1;
    let (level, name) = match to {
        SocketAddr::V4(_) => (libc::SOL_IP, libc::IP_RECVERR),
        SocketAddr::V6(_) => (libc::SOL_IPV6, libc::IPV6_RECVERR),
    };
    // SAFETY: a valid fd, and a c_int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    match to {
        SocketAddr::V4(_) => socket.set_ttl_v4(u32::from(ttl))?,
        SocketAddr::V6(_) => socket.set_unicast_hops_v6(u32::from(ttl))?,
    }
    match socket.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket)
}

/// The first ICMP report on the socket's error queue, as a hop; None when the queue is empty
/// or holds no ICMP report (a local error).
fn read_error_queue(socket: &Socket, to: SocketAddr, ttl: u8, sent: Instant) -> Option<Hop> {
    // A bounded number of entries: the kernel queues at most what the socket's buffer holds.
    for _ in 0..8 {
        match recv_error(socket.as_raw_fd()) {
            Ok(Some(report)) => {
                let v6 = to.is_ipv6();
                let kind = match (v6, report.icmp_type) {
                    (false, 11) | (true, 3) => HopKind::TimeExceeded,
                    (false, 3) | (true, 1) => HopKind::Unreachable,
                    // Packet too big, parameter problems: not an answer about the path's end.
                    _ => continue,
                };
                return Some(Hop {
                    ttl,
                    address: report.offender?,
                    rtt_ms: rtt(sent),
                    kind,
                    icmp_type: Some(report.icmp_type),
                    icmp_code: Some(report.icmp_code),
                    meaning: icmp_meaning(v6, report.icmp_type, report.icmp_code),
                });
            }
            Ok(None) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// One error-queue entry.
struct Report {
    icmp_type: u8,
    icmp_code: u8,
    offender: Option<IpAddr>,
}

/// `recvmsg(MSG_ERRQUEUE)`: Ok(None) for an entry that is not an ICMP report, Err(WouldBlock)
/// for an empty queue.
fn recv_error(fd: libc::c_int) -> io::Result<Option<Report>> {
    // The quoted packet is not needed: a small buffer, truncated.
    let mut data = [0u8; 64];
    // u64 for the cmsg alignment.
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    // SAFETY: fd is open; msg points at live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let ee_size = size_of::<libc::sock_extended_err>();
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_* walk within it, and each
    // read below is checked against the cmsg's own length first.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let ours = (c.cmsg_level == libc::SOL_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::SOL_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            let header = libc::CMSG_LEN(0) as usize;
            if ours && c.cmsg_len as usize >= header + ee_size {
                let ee_ptr = libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err;
                let ee = std::ptr::read_unaligned(ee_ptr);
                if ee.ee_origin != libc::SO_EE_ORIGIN_ICMP
                    && ee.ee_origin != libc::SO_EE_ORIGIN_ICMP6
                {
                    return Ok(None);
                }
                let room = c.cmsg_len as usize - header - ee_size;
                let offender = libc::SO_EE_OFFENDER(ee_ptr) as *const u8;
                return Ok(Some(Report {
                    icmp_type: ee.ee_type,
                    icmp_code: ee.ee_code,
                    offender: sockaddr_ip(offender, room),
                }));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(None)
}

/// The address of a `sockaddr_in` or `sockaddr_in6` of at most `room` bytes at `p`.
///
/// # Safety
/// `p` must point at `room` readable bytes.
unsafe fn sockaddr_ip(p: *const u8, room: usize) -> Option<IpAddr> {
    if room < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: room checked for each read.
    unsafe {
        let family = std::ptr::read_unaligned(p as *const libc::sa_family_t);
        match family as libc::c_int {
            libc::AF_INET if room >= size_of::<libc::sockaddr_in>() => {
                let sin = std::ptr::read_unaligned(p as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 if room >= size_of::<libc::sockaddr_in6>() => {
                let sin6 = std::ptr::read_unaligned(p as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, addr: &str, kind: HopKind, t: Option<u8>, c: Option<u8>) -> Answer {
        Answer::Hop(Hop {
            ttl,
            address: addr.parse().unwrap(),
            rtt_ms: 0.5,
            kind,
            icmp_type: t,
            icmp_code: c,
            meaning: "m".into(),
        })
    }

    fn built(answers: Vec<(u8, Answer)>) -> Trace {
        let to: SocketAddr = "198.51.100.10:8787".parse().unwrap();
        build(to, "tcp", 16, answers.into_iter().collect(), Duration::ZERO)
    }

    #[test]
    fn silence_after_a_hop_is_after_that_hop() {
        let t = built(vec![
            (
                1,
                hop(1, "10.0.1.4", HopKind::TimeExceeded, Some(11), Some(0)),
            ),
            (2, Answer::Silent),
            (3, Answer::Silent),
        ]);
        assert_eq!(t.ended, TraceEnd::SilentAfterHop);
        assert_eq!(t.stopped_after(), Some("10.0.1.4".parse().unwrap()));
        assert!(
            t.summary.contains("silent after hop 1 10.0.1.4"),
            "{}",
            t.summary
        );
        assert!(!t.summary.contains("hop 2"), "{}", t.summary);
    }

    #[test]
    fn a_terminal_answer_ends_the_path_and_later_ttls_are_dropped() {
        let t = built(vec![
            (
                1,
                hop(1, "10.0.1.4", HopKind::TimeExceeded, Some(11), Some(0)),
            ),
            (
                2,
                hop(2, "10.0.2.1", HopKind::Unreachable, Some(3), Some(13)),
            ),
            (
                3,
                hop(3, "10.0.2.1", HopKind::Unreachable, Some(3), Some(13)),
            ),
        ]);
        assert_eq!((t.ended, t.hops.len()), (TraceEnd::Rejected, 2));
        let dest = built(vec![(
            1,
            hop(1, "198.51.100.10", HopKind::Reply, None, None),
        )]);
        assert_eq!(
            (dest.ended, dest.stopped_after()),
            (TraceEnd::Destination, None)
        );
        let port = built(vec![(
            2,
            hop(2, "198.51.100.10", HopKind::Unreachable, Some(3), Some(3)),
        )]);
        assert_eq!(
            port.ended,
            TraceEnd::Destination,
            "the host itself said no one listens"
        );
    }

    #[test]
    fn a_rejecting_router_is_named_by_the_hop_it_first_answered_as() {
        let t = built(vec![
            (
                1,
                hop(1, "10.0.1.4", HopKind::TimeExceeded, Some(11), Some(0)),
            ),
            (
                2,
                hop(2, "10.0.2.1", HopKind::TimeExceeded, Some(11), Some(0)),
            ),
            (
                3,
                hop(3, "10.0.2.1", HopKind::Unreachable, Some(3), Some(13)),
            ),
        ]);
        assert_eq!(t.ended, TraceEnd::Rejected);
        assert!(
            t.summary
                .starts_with("3 hops answered, rejected by hop 2 10.0.2.1 (the TTL 3 probe): "),
            "{}",
            t.summary
        );
    }

    #[test]
    fn nothing_answered_is_no_hop_or_the_local_filter() {
        assert_eq!(
            built(vec![(1, Answer::Silent)]).ended,
            TraceEnd::NoHopAnswered
        );
        assert_eq!(
            built(vec![(1, Answer::Local)]).ended,
            TraceEnd::LocalFirewall
        );
    }

    #[test]
    fn icmp_codes_have_their_meaning() {
        assert!(
            icmp_meaning(false, 3, 13).starts_with("communication administratively prohibited")
        );
        assert!(icmp_meaning(true, 1, 1).starts_with("communication administratively prohibited"));
        assert!(icmp_meaning(true, 3, 0).starts_with("time exceeded"));
        assert_eq!(icmp_meaning(false, 99, 7), "ICMP type 99 code 7");
    }

    #[test]
    fn an_empty_error_queue_is_would_block() {
        let s = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking(), None).unwrap();
        let e = recv_error(s.as_raw_fd()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
