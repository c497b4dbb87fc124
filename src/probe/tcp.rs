//! The TCP probe: resolve (shared), then connect with a deadline, trying each address in turn.
//! Raw TCP is always direct, never through a proxy.

use tokio::net::TcpStream;

use super::{Dest, Evidence, Phase, ProbeEnv, ProbeError};
use crate::net::dial;

pub async fn probe(dest: Dest<'_>, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    connect(dest, env, ev).await?;
    if env.net.app_rule_port(dest.port) {
        ev.unverified = Some(app_rule_note(dest.port));
    }
    Ok(())
}

/// Why a connect on an application-rule port proves nothing: the firewall answers it.
pub fn app_rule_note(port: u16) -> String {
    let layer = match port {
        80 => "HTTP",
        443 => "TLS",
        _ => "TLS or HTTP",
    };
    format!(
        "a firewall's application rule answers TCP itself on port {port}; only {layer} proves this path"
    )
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
