//! The peer probe: a path between two nodes, confirmed by the echo of a `vnetprobe listen`
//! responder (see `net::echo`). Over TCP a connect proves little on its own (a firewall or a
//! transparent proxy may accept in the peer's place); over UDP silence proves nothing. Here a
//! pass means the responder itself answered this request, and with a shared key that nobody
//! on the path could have forged its answer. Always direct, never through a proxy.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Dest;
use super::{ErrorKind, Evidence, Phase, ProbeEnv, ProbeError, ResponderEvidence};
use crate::net::echo::{self, Echo, Rejected, Transport};

pub async fn probe(
    dest: Dest<'_>,
    transport: Transport,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let port = dest.port;
    let key = env.net.peer_key.as_ref();
    let nonce = echo::nonce();
    let reply = match transport {
        Transport::Udp => {
            let resolved = super::resolve(dest.host, env, ev).await?;
            let (socket, peer) = super::udp::open(&resolved.addrs, port, ev)?;
            ev.peer = Some(peer);
            ev.note("direct");
            let req = echo::request(key, Transport::Udp, port, &nonce);
            let start = Instant::now();
            let heard = udp_exchange(&socket, &req, env.timeout).await;
            ev.phase(Phase::Wait, start.elapsed());
            let heard = heard.map_err(|e| super::udp::classify(&e, peer))?;
            let Some(reply) = heard else {
                return Err(ProbeError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{peer}: no echo within {} ms: the datagram or its echo was dropped on the \
                         path (NSG, route table, peering), or no `vnetprobe listen` answers on UDP {port} there",
                        env.timeout.as_millis()
                    ),
                ));
            };
            reply
        }
        Transport::Tcp => {
            let mut stream = super::tcp::connect(dest, env, ev).await?;
            crate::net::dial::no_delay(&stream)?;
            let peer = ev.peer.expect("a connected probe records its peer");
            let req = echo::request(key, Transport::Tcp, port, &nonce);
            let start = Instant::now();
            let heard = tcp_exchange(&mut stream, &req, env.timeout).await;
            ev.phase(Phase::FirstByte, start.elapsed());
            heard.map_err(|why| {
                ProbeError::new(
                    ErrorKind::PeerNoEcho,
                    format!("{peer}: TCP {port} accepted the connection, but {why}"),
                )
            })?
        }
    };
    let peer = ev.peer.map(|p| p.to_string()).unwrap_or_default();
    match echo::verify(&reply, key, transport, port, &nonce) {
        Ok(Echo {
            name,
            authenticated,
        }) => {
            ev.note(format!(
                "peer {name} echoed ({})",
                if authenticated {
                    "HMAC-SHA256 verified"
                } else {
                    "not authenticated"
                }
            ));
            if !authenticated {
                ev.warnings.push(
                    "peer echo not authenticated: without --key-file any device on the path could answer \
                     in the responder's place"
                        .into(),
                );
            }
            ev.responder = Some(ResponderEvidence {
                node: name,
                authenticated,
            });
            Ok(())
        }
        Err(Rejected::NotEcho(why)) => Err(ProbeError::new(
            ErrorKind::PeerNoEcho,
            format!(
                "{peer}: the answer is {why}: no `vnetprobe listen` answers on {} {port} there",
                transport.as_str().to_uppercase()
            ),
        )),
        Err(Rejected::NotAuthenticated(why)) => Err(ProbeError::new(
            ErrorKind::PeerNotAuthenticated,
            format!("{peer}: not authenticated: {why}"),
        )),
    }
}

/// One request, one datagram back (or None: silence). ICMP errors surface as `Err`.
async fn udp_exchange(
    socket: &tokio::net::UdpSocket,
    req: &[u8],
    wait: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    socket.send(req).await?;
    let mut buf = [0u8; echo::REQUEST_LEN + 1];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(Some(buf[..n].to_vec())),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

/// Writes the request and reads until the responder closes or a whole echo is in, at most one
/// request's length plus one byte (to tell an over-long answer), all under one deadline.
async fn tcp_exchange(
    stream: &mut tokio::net::TcpStream,
    req: &[u8],
    wait: Duration,
) -> Result<Vec<u8>, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let late = || {
        format!(
            "no echo came within {} ms (something other than `vnetprobe listen` holds the port, \
             or the responder is rate-limiting this node)",
            wait.as_millis()
        )
    };
    match tokio::time::timeout_at(deadline, stream.write_all(req)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("sending the request failed ({e})")),
        Err(_) => return Err(late()),
    }
    let mut buf = Vec::with_capacity(echo::REQUEST_LEN + 1);
    let mut chunk = [0u8; echo::REQUEST_LEN + 1];
    while buf.len() <= echo::REQUEST_LEN && !echo::is_complete(&buf) {
        let room = echo::REQUEST_LEN + 1 - buf.len();
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) if buf.is_empty() => {
                return Err(format!("the connection broke before any answer ({e})"));
            }
            Ok(Err(_)) => break,
            Err(_) if buf.is_empty() => return Err(late()),
            Err(_) => break,
        }
    }
    if buf.is_empty() {
        return Err("it closed without an echo".to_string());
    }
    Ok(buf)
}
