//! The TCP probe: resolve (shared), then connect with a deadline, trying each address in turn.
//! Raw TCP is always direct, never through a proxy.

use tokio::net::TcpStream;

use super::{Evidence, Phase, ProbeEnv, ProbeError};
use crate::catalog::Target;
use crate::net::dial;

pub async fn probe(target: &Target, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    connect(target, env, ev).await.map(drop)
}

/// A direct TCP connection to the target, with its DNS and connect phases recorded.
pub async fn connect(
    target: &Target,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<TcpStream, ProbeError> {
    let port = target.port.expect("targets that connect have a port");
    let resolved = super::resolve(target, env, ev).await?;
    let start = std::time::Instant::now();
    let result = dial::connect_any(&resolved.addrs, port, env.timeout()).await;
    ev.phase(Phase::Connect, start.elapsed());
    let (stream, peer) = result?;
    ev.peer = Some(peer);
    ev.note("direct");
    Ok(stream)
}
