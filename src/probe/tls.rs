//! The TLS probe: a connected stream to the target, then a handshake judged against the public
//! web PKI and this host's own trust (see `net::tls`). Nothing is sent after the handshake.

use tokio::net::TcpStream;

use super::{Evidence, ProbeEnv, ProbeError};
use crate::catalog::Target;
use crate::net::tls;

pub async fn probe(target: &Target, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    let stream = stream(target, env, ev).await?;
    tls::handshake(stream, &target.host, env, ev)
        .await
        .map(drop)
}

/// The seam for the route to a TLS target: raw TLS probes go direct today; a proxied route
/// (a CONNECT tunnel) would be chosen here and the handshake would not change.
async fn stream(
    target: &Target,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<TcpStream, ProbeError> {
    super::tcp::connect(target, env, ev).await
}
