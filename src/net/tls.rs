//! TLS for probes: the trust of a run (the public web PKI, and separately this host's own
//! store plus `--ca-file`), a verifier that records the peer chain whatever the verdict, and
//! the handshake that turns "trusted only locally" into the interception finding.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::NetConfig;
use crate::outcome::{CertInfo, ErrorKind, ProbeError, TlsEvidence};

/// The run's trust, built once (loading the system store is slow) and shared by every handshake.
pub type TrustCell = tokio::sync::OnceCell<Result<Arc<Trust>, String>>;

/// Where a trust anchor came from; names the setting an operator would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Public,
    PublicFile,
    System,
    CaFile,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Public => "the public web PKI roots",
            Source::PublicFile => "the public roots in VNETPROBE_PUBLIC_ROOTS",
            Source::System => "the system store",
            Source::CaFile => "--ca-file",
        }
    }
}

/// The verifiers of one run: public first, then each local source on its own so a finding can
/// name the one that trusted the chain.
#[derive(Debug)]
pub struct Trust {
    provider: Arc<CryptoProvider>,
    public: (Source, Arc<WebPkiServerVerifier>),
    local: Vec<(Source, Arc<WebPkiServerVerifier>)>,
}

/// Reads every certificate of a PEM file; the error names `what` (the flag or variable) and the file.
pub fn read_pem(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    certificates(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The certificates of a PEM file; the error says why, the caller names the setting.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::input::read(path, crate::input::PEM).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

fn store_of(certs: impl IntoIterator<Item = CertificateDer<'static>>) -> (RootCertStore, usize) {
    let mut store = RootCertStore::empty();
    let (_, rejected) = store.add_parsable_certificates(certs);
    (store, rejected)
}

impl Trust {
    /// Builds the trust of a run. A bad `--ca-file` or public roots file is an error naming it;
    /// an empty or unreadable system store is not (the local trust is then `--ca-file` alone).
    pub fn load(net: &NetConfig) -> Result<Trust, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = |store: RootCertStore, what: &str| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| format!("{what}: {e}"))
        };
        let public = match &net.public_roots {
            Some(path) => {
                let (store, _) = store_of(read_pem(path, "VNETPROBE_PUBLIC_ROOTS")?);
                let what = format!("VNETPROBE_PUBLIC_ROOTS {}", path.display());
                (Source::PublicFile, verifier(store, &what)?)
            }
            None => {
                let store = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                (
                    Source::Public,
                    verifier(store, "the built-in public roots")?,
                )
            }
        };
        let mut local = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            log::debug!("system certificate store: {e}");
        }
        let (store, rejected) = store_of(native.certs);
        if rejected > 0 {
            log::debug!("system certificate store: {rejected} certificates could not be parsed");
        }
        // An empty store cannot make a verifier; the system store then simply trusts nothing.
        if !store.is_empty() {
            local.push((Source::System, verifier(store, "the system store")?));
        }
        if let Some(path) = &net.ca_file {
            let (store, _) = store_of(read_pem(path, "--ca-file")?);
            if store.is_empty() {
                return Err(format!(
                    "--ca-file {}: no usable CA certificate in the file",
                    path.display()
                ));
            }
            local.push((
                Source::CaFile,
                verifier(store, &format!("--ca-file {}", path.display()))?,
            ));
        }
        Ok(Trust {
            provider,
            public,
            local,
        })
    }
}

/// The run's trust, loaded into `cell` on first use, off the async threads.
pub async fn trust(cell: &TrustCell, net: &NetConfig) -> Result<Arc<Trust>, ProbeError> {
    let net = net.clone();
    let loaded = cell
        .get_or_init(|| async move {
            match tokio::task::spawn_blocking(move || Trust::load(&net)).await {
                Ok(r) => r.map(Arc::new),
                Err(e) => Err(format!("loading the TLS trust: {e}")),
            }
        })
        .await;
    loaded
        .clone()
        .map_err(|e| ProbeError::new(ErrorKind::Io, e))
}

/// What the verifier concluded about the chain it was shown.
#[derive(Debug, Clone)]
enum Verdict {
    Public,
    Local(Source),
    /// Rejected; `local` when the chain was only judged by a local source (it reached one).
    Rejected {
        error: rustls::Error,
        local: Option<Source>,
    },
}

#[derive(Debug, Default)]
struct Seen {
    chain: Vec<CertificateDer<'static>>,
    verdict: Option<Verdict>,
}

/// A per-handshake verifier: records the chain, then judges it against each trust in turn.
#[derive(Debug)]
struct Recorder {
    trust: Arc<Trust>,
    seen: Mutex<Seen>,
}

fn is_unknown_issuer(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    )
}

impl Recorder {
    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Verdict {
        let verify = |v: &WebPkiServerVerifier| {
            v.verify_server_cert(end_entity, intermediates, server_name, &[], now)
        };
        let public_err = match verify(&self.trust.public.1) {
            Ok(_) => return Verdict::Public,
            Err(e) => e,
        };
        // Expiry and name are judged the same way by every trust; only an unknown issuer says
        // the chain may belong to someone else's PKI.
        if !is_unknown_issuer(&public_err) {
            return Verdict::Rejected {
                error: public_err,
                local: None,
            };
        }
        let mut verdict = Verdict::Rejected {
            error: public_err,
            local: None,
        };
        for (source, v) in &self.trust.local {
            match verify(v) {
                Ok(_) => return Verdict::Local(*source),
                Err(e) if !is_unknown_issuer(&e) => {
                    verdict = Verdict::Rejected {
                        error: e,
                        local: Some(*source),
                    }
                }
                Err(_) => {}
            }
        }
        verdict
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.judge(end_entity, intermediates, server_name, now);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.verdict = Some(verdict.clone());
        match verdict {
            // Interception is judged after the handshake, so the evidence has the TLS version too.
            Verdict::Public | Verdict::Local(_) => Ok(ServerCertVerified::assertion()),
            Verdict::Rejected { error, .. } => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .public
            .1
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .public
            .1
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One certificate as the report shows it; None when x509-parser cannot read it.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => {
                        Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string())
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        sans,
    })
}

/// The common name of an X.509 name, or the whole name when it has none.
fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// The issuer of the top of the chain: the CA an operator would look for.
fn top_issuer(chain: &[CertificateDer<'static>]) -> String {
    let Some(top) = chain.last() else {
        return "an unknown issuer".into();
    };
    match x509_parser::parse_x509_certificate(top) {
        Ok((_, cert)) => common_name(cert.issuer()),
        Err(_) => "an unreadable certificate".into(),
    }
}

/// The first certificate of the chain outside its validity period, as "'name' expired on DATE".
fn out_of_date(chain: &[CertificateDer<'static>], now: i64) -> Option<String> {
    let date = |t: i64| {
        humantime::format_rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
        )
    };
    chain.iter().find_map(|der| {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let (from, until) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        let who = common_name(cert.subject());
        if until < now {
            Some(format!("'{who}' expired on {}", date(until)))
        } else if from > now {
            Some(format!(
                "'{who}' is not valid before {} (is this host's clock right?)",
                date(from)
            ))
        } else {
            None
        }
    })
}

fn local_names(trust: &Trust) -> String {
    let mut names: Vec<&str> = trust.local.iter().map(|(s, _)| s.describe()).collect();
    if names.is_empty() {
        names.push("the system store (empty here)");
    }
    names.join(" or ")
}

/// Turns a rejected chain into the error an operator acts on.
fn chain_error(
    error: &rustls::Error,
    local: Option<Source>,
    seen: &Seen,
    server_name: &str,
    trust: &Trust,
) -> ProbeError {
    let trusted_note = match local {
        Some(s) => format!(
            " (the chain is trusted only by {}: a TLS-inspecting firewall or proxy?)",
            s.describe()
        ),
        None => String::new(),
    };
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return ProbeError::new(
            ErrorKind::TlsUntrusted,
            format!("certificate rejected: {error}{trusted_note}"),
        );
    };
    match cert_error {
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let what = out_of_date(&seen.chain, now).unwrap_or_else(|| error.to_string());
            ProbeError::new(
                ErrorKind::TlsExpired,
                format!("certificate out of date: {what}{trusted_note}"),
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = seen
                .chain
                .first()
                .and_then(|c| cert_info(c))
                .map(|c| c.sans.join(", "))
                .unwrap_or_default();
            let names = if names.is_empty() {
                "other names".to_string()
            } else {
                names
            };
            ProbeError::new(
                ErrorKind::TlsNameMismatch,
                format!("the certificate is for {names}, not for {server_name}{trusted_note}"),
            )
        }
        CertificateError::UnknownIssuer => ProbeError::new(
            ErrorKind::TlsUntrusted,
            format!(
                "chain ends at '{}', trusted neither by {} nor by {}",
                top_issuer(&seen.chain),
                trust.public.0.describe(),
                local_names(trust)
            ),
        ),
        _ => ProbeError::new(
            ErrorKind::TlsUntrusted,
            format!("certificate rejected: {error}{trusted_note}"),
        ),
    }
}

/// A stream that counts the bytes the peer sent: a handshake that broke off before the first
/// byte of the server's answer is told apart from one that broke off later.
pub struct Counted<S> {
    inner: S,
    received: Arc<AtomicUsize>,
}

impl<S> Counted<S> {
    fn new(inner: S) -> (Counted<S>, Arc<AtomicUsize>) {
        let received = Arc::new(AtomicUsize::new(0));
        let counted = Counted {
            inner,
            received: received.clone(),
        };
        (counted, received)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.received.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection ended (closed or reset) before the server sent a single byte after our
/// ClientHello: no ServerHello, no alert. Azure Firewall's application rules end a flow to an
/// FQDN they do not allow this way (after completing the TCP handshake themselves); the
/// firewall FAQ documents no other client-side signal. `sni` is the name the ClientHello
/// carried, or None for an IP literal (RFC 6066 allows no address as SNI, and Azure Firewall
/// denies a ClientHello without SNI).
fn reset_after_hello(e: &std::io::Error, sni: Option<&str>) -> ProbeError {
    let how = match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "closed",
        _ => "reset",
    };
    let (sent, why) = match sni {
        Some(name) => (
            format!("the ClientHello (SNI {name})"),
            "as an application-rule firewall (Azure Firewall) does to an FQDN no application rule allows",
        ),
        None => (
            "the ClientHello (no SNI: an IP address cannot be one)".to_string(),
            "as an application-rule firewall (Azure Firewall) does to a ClientHello without SNI; \
             probe the host by its name",
        ),
    };
    ProbeError::new(
        ErrorKind::TlsResetAfterHello,
        format!(
            "TCP connected, then the connection was {how} right after {sent}: no ServerHello, no \
             alert, {why}"
        ),
    )
}

fn is_hang_up(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as Io;
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_none()
        && matches!(
            e.kind(),
            Io::UnexpectedEof | Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe
        )
}

/// A handshake failure that is not about the chain: alerts, garbage, a peer that hung up.
fn handshake_error(e: &std::io::Error) -> ProbeError {
    use std::io::ErrorKind as Io;
    let message = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server refused the handshake with alert {alert:?}")
        }
        Some(rustls::Error::InvalidMessage(m)) => {
            format!(
                "the server did not answer with TLS ({m:?}): a plain-text service, or a proxy's error page?"
            )
        }
        Some(other) => format!("handshake failed: {other}"),
        None => match e.kind() {
            Io::UnexpectedEof | Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                format!(
                    "the peer closed the connection during the handshake, after its first answer ({e})"
                )
            }
            _ => format!("handshake failed: {e}"),
        },
    };
    ProbeError::new(ErrorKind::TlsHandshake, message)
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        other => format!("{other:?}"),
    }
}

fn tls_evidence(seen: &Seen, version: Option<String>) -> TlsEvidence {
    let chain: Vec<CertInfo> = seen.chain.iter().filter_map(|c| cert_info(c)).collect();
    let trusted_by = match seen.verdict {
        Some(Verdict::Public) => "public",
        Some(Verdict::Local(_)) => "system",
        _ => "none",
    };
    TlsEvidence {
        version,
        earliest_expiry: chain.iter().map(|c| c.not_after).min(),
        chain,
        trusted_by: trusted_by.into(),
    }
}

/// What a handshake saw, whatever its result: the time it took, the chain and its trust (once
/// the peer showed one), and a warning when an inspected chain was let through.
#[derive(Debug, Default)]
pub struct Handshake {
    pub took: Duration,
    pub tls: Option<TlsEvidence>,
    pub warning: Option<String>,
}

/// TLS over `stream` (direct or a tunnel) with SNI `server_name` within `wait`, offering `alpn`
/// (e.g. `b"http/1.1"`), and the interception policy: a chain trusted only by the system store
/// or `--ca-file` is `tls_intercepted`, or a warning when `allow_intercept` is set.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    server_name: &str,
    alpn: &[&[u8]],
    trust: Arc<Trust>,
    wait: Duration,
    allow_intercept: bool,
) -> (Result<TlsStream<Counted<S>>, ProbeError>, Handshake) {
    let mut out = Handshake::default();
    let bare = crate::address::bare(server_name);
    let name = match ServerName::try_from(bare.to_string()) {
        Ok(name) => name,
        Err(e) => {
            let e = ProbeError::new(
                ErrorKind::TlsHandshake,
                format!("{server_name:?} is not a TLS server name: {e}"),
            );
            return (Err(e), out);
        }
    };
    let recorder = Arc::new(Recorder {
        trust: trust.clone(),
        seen: Mutex::new(Seen::default()),
    });
    let config = ClientConfig::builder_with_provider(trust.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::new(ErrorKind::Io, format!("TLS configuration: {e}")));
    let mut config = match config {
        Ok(c) => c
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth(),
        Err(e) => return (Err(e), out),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();

    // An IP literal is a ServerName rustls sends no SNI for (RFC 6066); every other name is
    // sent as SNI (`enable_sni` is on by default), through a tunnel too.
    let sni = match &name {
        ServerName::DnsName(d) => Some(d.as_ref().to_string()),
        _ => None,
    };
    let (stream, received) = Counted::new(stream);
    let start = Instant::now();
    let result = tokio::time::timeout(
        wait,
        TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await;
    let answered = received.load(Ordering::Relaxed) > 0;
    out.took = start.elapsed();
    let seen = std::mem::take(&mut *recorder.seen.lock().unwrap_or_else(|p| p.into_inner()));
    let version = match &result {
        Ok(Ok(s)) => s.get_ref().1.protocol_version().map(version_name),
        _ => None,
    };
    if seen.verdict.is_some() {
        out.tls = Some(tls_evidence(&seen, version));
    }
    let stream = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let e = match &seen.verdict {
                Some(Verdict::Rejected { error, local }) => {
                    chain_error(error, *local, &seen, bare, &trust)
                }
                None if !answered && is_hang_up(&e) => reset_after_hello(&e, sni.as_deref()),
                _ => handshake_error(&e),
            };
            return (Err(e), out);
        }
        Err(_) => {
            let what = if answered {
                "the server's first answer came, then the handshake did not finish"
            } else {
                "no ServerHello came"
            };
            let e = ProbeError::new(
                ErrorKind::Timeout,
                format!(
                    "connected, but no TLS handshake within {} ms: {what} (a firewall holding the connection?)",
                    wait.as_millis()
                ),
            );
            return (Err(e), out);
        }
    };
    if let Some(Verdict::Local(source)) = seen.verdict {
        let finding = format!(
            "chain ends at '{}', trusted only by {}: a TLS-inspecting firewall or proxy",
            top_issuer(&seen.chain),
            source.describe()
        );
        if !allow_intercept {
            return (
                Err(ProbeError::new(ErrorKind::TlsIntercepted, finding)),
                out,
            );
        }
        out.warning = Some(format!("{finding} (allowed by --allow-intercept)"));
    }
    (Ok(stream), out)
}

#[cfg(test)]
mod tests;
