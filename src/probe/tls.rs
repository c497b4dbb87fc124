//! The TLS probe: a stream to the target (direct, or tunnelled through the proxy curl would use
//! for https://host:port), then a handshake judged against the public web PKI and this host's
//! own trust (see `net::tls`). Nothing is sent after the handshake.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use super::{Evidence, Phase, ProbeEnv, ProbeError, route};
use crate::catalog::Target;
use crate::net::proxy::Scheme;
use crate::net::tls;

pub async fn probe(target: &Target, env: &ProbeEnv, ev: &mut Evidence) -> Result<(), ProbeError> {
    // The handshake takes what is left of the probe's deadline after the stream opened.
    let opened = route::open(target, Scheme::Https, env, ev).await?;
    handshake(opened.stream, &target.host, &[], env, ev)
        .await
        .map(drop)
}

/// `net::tls::handshake` with the run's trust, within what is left of the probe's deadline,
/// recording Phase::Tls, the chain and any interception warning in the evidence.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    server_name: &str,
    alpn: &[&[u8]],
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<TlsStream<S>, ProbeError> {
    let trust = tls::trust(&env.tls, &env.net).await?;
    let wait = super::remaining(env);
    let (result, seen) = tls::handshake(
        stream,
        server_name,
        alpn,
        trust,
        wait,
        env.net.allow_intercept,
    )
    .await;
    // Zero when it never started (a name that is not a TLS server name).
    if !seen.took.is_zero() {
        ev.phase(Phase::Tls, seen.took);
    }
    if seen.tls.is_some() {
        ev.tls = seen.tls;
    }
    ev.warnings.extend(seen.warning);
    result
}
