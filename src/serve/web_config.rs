//! The web config file of Prometheus exporters (exporter-toolkit's `--web.config.file`): TLS for
//! the listener and Basic auth users with bcrypt hashes. Errors name the file and the line.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Error as YamlError, Spanned};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::Share;

/// What the web config asks for; the default is plain HTTP without authentication.
#[derive(Default, Clone)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
}

/// The file, as exporter-toolkit names its keys; any other key is refused.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Present means TLS: `tls_server_config:` with nothing below it is an error, not plain HTTP.
    #[serde(default, deserialize_with = "present")]
    tls_server_config: Option<Spanned<TlsFile>>,
    /// Empty (or null) means no authentication.
    basic_auth_users: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Spanned<String>,
    key_file: Spanned<String>,
    client_auth_type: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    min_version: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// exporter-toolkit settings we recognise but do not implement: a clearer error than "unknown".
const UNSUPPORTED: &[&str] = &[
    "http_server_config",
    "rate_limit",
    "cert",
    "key",
    "client_ca",
    "client_allowed_sans",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
];

/// Bounds far above any real web config (a few keys, some users) and far below what hurts: the
/// file is at most `input::SMALL`, and these stop nesting, anchors and alias expansion.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_depth: 16,
            flow_nesting_limit: 16,
            max_events: 100_000,
            max_nodes: 50_000,
            max_anchors: 100,
            max_aliases: 100,
            max_merge_keys: 16,
            max_total_scalar_bytes: crate::input::SMALL as usize,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 8,
            max_alias_expansions_per_anchor: 100,
        },
        // A snippet would quote the file's line, and with it a hash.
        with_snippet: false,
    }
}

/// serde-saphyr's errors in this file's words, never echoing a value (a hash, or a password
/// pasted by mistake, must not reach a log); `At` puts the file and line in front.
struct Wording;

impl serde_saphyr::Localizer for Wording {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _: serde_saphyr::Location) -> Cow<'a, str> {
        base
    }
}

impl serde_saphyr::MessageFormatter for Wording {
    fn localizer(&self) -> &dyn serde_saphyr::Localizer {
        self
    }

    fn format_message<'a>(&self, err: &'a YamlError) -> Cow<'a, str> {
        let text = match err {
            YamlError::SerdeUnknownField {
                field, expected, ..
            } => {
                let why = if UNSUPPORTED.contains(&field.as_str()) {
                    format!(
                        "`{field}` is an exporter-toolkit setting that vnetprobe does not support"
                    )
                } else if expected.contains(&"cert_file") {
                    format!("unknown key `{field}` in tls_server_config")
                } else {
                    format!("unknown key `{field}`")
                };
                format!("{why} (supported: {})", expected.join(", "))
            }
            YamlError::SerdeMissingField { field, .. } => {
                format!("tls_server_config needs both cert_file and key_file ({field} is missing)")
            }
            YamlError::Unexpected {
                expected: "mapping start",
                ..
            } => "indented `key: value` lines (a mapping) are needed here".into(),
            YamlError::Unexpected {
                expected: "string scalar",
                ..
            } => "a single value is needed here, not a list or a mapping".into(),
            YamlError::NullIntoString { .. } => "a value is needed here".into(),
            YamlError::Budget {
                breach: serde_saphyr::budget::BudgetBreach::Documents { .. },
                ..
            } => "only one YAML document per file".into(),
            YamlError::Budget { breach, .. } => {
                format!("too large or too complex for a web config ({breach:?})")
            }
            YamlError::SerdeInvalidType {
                unexpected,
                expected,
                ..
            }
            | YamlError::SerdeInvalidValue {
                unexpected,
                expected,
                ..
            } => {
                // `string "..."`: the kind, not the value.
                let kind = unexpected.split(['"', '`']).next().unwrap_or_default();
                format!("expected {expected}, found {}", kind.trim_end())
            }
            other => return serde_saphyr::UserMessageFormatter.format_message(other),
        };
        text.into()
    }
}

/// Where an error is: the file and a line in it.
struct At<'a> {
    file: &'a Path,
}

impl At<'_> {
    fn err(&self, line: usize, message: impl std::fmt::Display) -> String {
        format!("{}:{line}: {message}", self.file.display())
    }

    fn yaml(&self, e: &YamlError) -> String {
        let message = e.render_with_options(serde_saphyr::render_options! {
            formatter: &Wording,
            snippets: serde_saphyr::SnippetMode::Off,
        });
        match e.location() {
            Some(at) => self.err(usize::try_from(at.line()).unwrap_or(usize::MAX), message),
            None => format!("{}: {message}", self.file.display()),
        }
    }
}

/// The (1-based) line a value was written on; an alias counts where it is used.
fn line<T>(value: &Spanned<T>) -> usize {
    usize::try_from(value.referenced.line()).unwrap_or(usize::MAX)
}

impl WebConfig {
    /// Reads and validates the file; TLS material is loaded now, so a bad path fails at start.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let text = crate::input::read_text(path, crate::input::SMALL)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        WebConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<WebConfig, String> {
        let at = At { file: path };
        // `None`: an empty document (nothing, comments, a lone `---`).
        let file: Option<File> =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| at.yaml(&e))?;
        let file = file.unwrap_or_default();
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(WebConfig {
            tls: match &file.tls_server_config {
                Some(section) => Some(tls(&at, base, section)?),
                None => None,
            },
            auth: users(&at, file.basic_auth_users.unwrap_or_default())?.map(Arc::new),
        })
    }
}

fn tls(at: &At, base: &Path, section: &Spanned<TlsFile>) -> Result<TlsAcceptor, String> {
    let fields = &section.value;
    let section_line = line(section);
    let (cert_path, cert_line) = (base.join(&fields.cert_file.value), line(&fields.cert_file));
    let (key_path, key_line) = (base.join(&fields.key_file.value), line(&fields.key_file));
    let pem = |path: &Path, line: usize, field: &str| {
        crate::input::read(path, crate::input::PEM)
            .map_err(|e| at.err(line, format!("{field} {}: {e}", path.display())))
    };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem(&cert_path, cert_line, "cert_file")?)
            .collect::<Result<_, _>>()
            .map_err(|e| at.err(cert_line, format!("cert_file {}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(at.err(
            cert_line,
            format!(
                "cert_file {}: no PEM certificate inside",
                cert_path.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem(&key_path, key_line, "key_file")?)
        .map_err(|e| at.err(key_line, format!("key_file {}: {e}", key_path.display())))?;

    let version = |field: &Option<Spanned<String>>,
                   key: &str|
     -> Result<Option<&'static SupportedProtocolVersion>, String> {
        let Some(v) = field else {
            return Ok(None);
        };
        match v.value.as_str() {
            "TLS12" => Ok(Some(&rustls::version::TLS12)),
            "TLS13" => Ok(Some(&rustls::version::TLS13)),
            old @ ("TLS10" | "TLS11") => Err(at.err(
                line(v),
                format!("{key} {old}: vnetprobe speaks TLS 1.2 and 1.3 only"),
            )),
            other => Err(at.err(line(v), format!("{key} {other:?}: use TLS12 or TLS13"))),
        }
    };
    let min = version(&fields.min_version, "min_version")?.unwrap_or(&rustls::version::TLS12);
    let max = version(&fields.max_version, "max_version")?.unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
            .collect();
    if versions.is_empty() {
        let line = fields.max_version.as_ref().map_or(section_line, line);
        return Err(at.err(line, "max_version is below min_version"));
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| at.err(section_line, e))?;
    let ca = fields.client_ca_file.as_ref();
    let auth_type = match &fields.client_auth_type {
        Some(t) => (t.value.as_str(), line(t)),
        None if ca.is_some() => ("RequireAndVerifyClientCert", section_line),
        None => ("NoClientCert", section_line),
    };
    let builder = match auth_type {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        (kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"), kind_line) => {
            let Some(ca) = ca else {
                return Err(at.err(
                    kind_line,
                    format!("client_auth_type {kind} needs client_ca_file"),
                ));
            };
            let (ca_path, ca_line) = (base.join(&ca.value), line(ca));
            let bad = |e: &dyn std::fmt::Display| {
                at.err(
                    ca_line,
                    format!("client_ca_file {}: {e}", ca_path.display()),
                )
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem(&ca_path, ca_line, "client_ca_file")?) {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no PEM certificate inside"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| at.err(ca_line, e))?)
        }
        (kind @ ("RequestClientCert" | "RequireAnyClientCert"), kind_line) => {
            return Err(at.err(
                kind_line,
                format!("client_auth_type {kind} (client certificates without verification) is not supported"),
            ));
        }
        (other, kind_line) => {
            return Err(at.err(
                kind_line,
                format!("client_auth_type {other:?}: use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ));
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| at.err(key_line, format!("cert_file and key_file: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn rank(v: &SupportedProtocolVersion) -> u16 {
    u16::from(v.version)
}

fn users(at: &At, section: BTreeMap<String, Spanned<String>>) -> Result<Option<BasicAuth>, String> {
    // In the file's order, so the first error reported is the first in the file.
    let mut entries: Vec<(String, Spanned<String>)> = section.into_iter().collect();
    entries.sort_by_key(|(_, hash)| line(hash));
    for (user, hash) in &entries {
        if user.contains(':') {
            return Err(at.err(
                line(hash),
                format!("user {user:?}: a Basic auth user name cannot contain ':'"),
            ));
        }
        if hash.value.parse::<bcrypt::HashParts>().is_err() {
            // The hash is not echoed: a password pasted by mistake must not reach a log.
            return Err(at.err(
                line(hash),
                format!("user {user:?}: not a bcrypt hash (make one with `htpasswd -nBC 10 USER`)"),
            ));
        }
    }
    let users: BTreeMap<String, String> = entries
        .into_iter()
        .map(|(user, hash)| (user, hash.value))
        .collect();
    Ok((!users.is_empty()).then(|| BasicAuth::new(users)))
}

/// bcrypt checks that run at once: bcrypt is slow on purpose, and bad requests must not eat
/// every core.
const CHECKS_AT_ONCE: usize = 2;
/// Requests whose credentials wait for a check or are being checked: at most
/// `PENDING_PER_SHARE` per address share, and `PENDING_CAP` in all, of which a share that
/// already has one pending may only fill half (the rest is kept for addresses with none, such
/// as a scraper beside a flood of wrong passwords from a few addresses). Beyond, the answer is
/// 429 at once, so a real scraper waits behind at most `PENDING_CAP / CHECKS_AT_ONCE` rounds of
/// bcrypt. A password that verified before is never queued.
const PENDING_CAP: usize = 24;
const PENDING_PER_SHARE: usize = 2;

/// What Basic auth makes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many requests already wait for a bcrypt check: not checked (429).
    Busy,
}

/// Requests waiting for (or in) a bcrypt check, in all and per share.
#[derive(Default)]
struct Pending {
    total: usize,
    by_share: HashMap<Share, usize>,
}

/// One request's place among the pending checks; given back on drop.
struct Ticket(Arc<Mutex<Pending>>, Share);

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut p = self.0.lock().expect("pending lock");
        p.total -= 1;
        if let Some(n) = p.by_share.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                p.by_share.remove(&self.1);
            }
        }
    }
}

/// Basic auth against bcrypt hashes. A password that verified once is remembered by its SHA-256
/// (per user), so a scraper does not pay a bcrypt round on every request.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// What an unknown user is checked against: a hash of the largest cost in the file, so the
    /// time taken does not tell which names exist.
    unknown: String,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    slots: Arc<Semaphore>,
    pending: Arc<Mutex<Pending>>,
}

/// A well-formed bcrypt hash at `cost` that no password matches (all-zero salt and digest: no
/// bcrypt output is 23 zero bytes in practice), built without spending the cost.
fn unmatchable(cost: u32) -> String {
    format!("$2b${cost:02}${}", ".".repeat(53))
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        BasicAuth {
            users,
            unknown: unmatchable(cost),
            verified: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            pending: Arc::default(),
        }
    }

    /// Whether an `Authorization` header value names a user and its password; `peer` is whose
    /// share of the pending checks the request takes.
    pub async fn check(&self, header: Option<&[u8]>, peer: IpAddr) -> Verdict {
        let Some((user, password)) = header.and_then(decode) else {
            return Verdict::Denied;
        };
        let digest = sha256(password.as_bytes());
        let remembered = self
            .verified
            .lock()
            .expect("auth cache lock")
            .get(&user)
            .copied();
        if remembered.is_some_and(|d| constant_time_eq(&d, &digest)) {
            return Verdict::Allowed;
        }
        let Some(ticket) = self.ticket(peer) else {
            return Verdict::Busy;
        };
        // An unknown user costs the same as the costliest known one.
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.unknown.clone(), false),
        };
        let ok = self.bcrypt(password, hash, ticket).await && known;
        if ok {
            self.verified
                .lock()
                .expect("auth cache lock")
                .insert(user, digest);
        }
        if ok {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    fn ticket(&self, peer: IpAddr) -> Option<Ticket> {
        let share = Share::of(peer);
        let mut p = self.pending.lock().expect("pending lock");
        let mine = p.by_share.get(&share).copied().unwrap_or(0);
        let room = if mine == 0 {
            PENDING_CAP
        } else {
            PENDING_CAP / 2
        };
        if p.total >= room || mine >= PENDING_PER_SHARE {
            return None;
        }
        p.total += 1;
        *p.by_share.entry(share).or_default() += 1;
        Some(Ticket(self.pending.clone(), share))
    }

    /// One bcrypt check in a slot; the slot and the ticket stay taken until the check ends,
    /// even when the request is abandoned meanwhile.
    async fn bcrypt(&self, password: String, hash: String, ticket: Ticket) -> bool {
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            let _held = (slot, ticket);
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }
}

fn decode(header: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, b64) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let (user, password) = String::from_utf8(raw)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, password))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&a[..], &b[..]).into()
}

#[cfg(test)]
mod tests;
