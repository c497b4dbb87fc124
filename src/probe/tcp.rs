//! The TCP probe: resolve (shared), then connect with a deadline, trying each address in turn.
//! Raw TCP is always direct, never through a proxy.

use tokio::net::TcpStream;

use super::{Dest, Evidence, Phase, ProbeEnv, ProbeError};
use crate::net::dial;

pub async fn probe(dest: Dest<'_>, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    connect(dest, env, ev).await.map(drop)
}

/// A direct TCP connection to `dest`, with its DNS and connect phases recorded.
pub async fn connect(
    dest: Dest<'_>,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<TcpStream, ProbeError> {
    let resolved = super::resolve(dest.host, env, ev).await?;
    let start = std::time::Instant::now();
    let result = dial::connect_any(&resolved.addrs, dest.port, super::remaining(env)).await;
    ev.phase(Phase::Connect, start.elapsed());
    let (stream, peer) = result?;
    ev.peer = Some(peer);
    ev.note("direct");
    Ok(stream)
}
