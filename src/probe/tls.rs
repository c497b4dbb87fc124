//! The TLS probe: a stream to the target (direct, or tunnelled through the proxy curl would use
//! for https://host:port), then a handshake judged against the public web PKI and this host's
//! own trust (see `net::tls`). Nothing is sent after the handshake.

use super::{Dest, Evidence, ProbeEnv, ProbeError, route};
use crate::net::proxy::Scheme;

pub async fn probe(dest: Dest<'_>, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    // The handshake takes what is left of the probe's deadline after the stream opened.
    let opened = route::open(dest, Scheme::Https, env, ev).await?;
    route::handshake(opened.stream, dest.host, &[], env, ev)
        .await
        .map(drop)
}
