//! The web config file of Prometheus exporters (exporter-toolkit's `--web.config.file`): TLS for
//! the listener and Basic auth users with bcrypt hashes. Errors name the file and the line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::yaml::{self, Entry, Value};

/// What the web config asks for; the default is plain HTTP without authentication.
#[derive(Default, Clone)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
}

const TOP_KEYS: &[&str] = &["tls_server_config", "basic_auth_users"];
const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
];
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

/// Where an error is: the file and a line in it.
struct At<'a> {
    file: &'a Path,
}

impl At<'_> {
    fn err(&self, line: usize, message: impl std::fmt::Display) -> String {
        format!("{}:{line}: {message}", self.file.display())
    }

    fn check_keys(&self, entries: &[Entry], allowed: &[&str], section: &str) -> Result<(), String> {
        for e in entries {
            if allowed.contains(&e.key.as_str()) {
                continue;
            }
            let why = if UNSUPPORTED.contains(&e.key.as_str()) {
                format!(
                    "`{}` is an exporter-toolkit setting that vnetprobe does not support",
                    e.key
                )
            } else {
                format!("unknown key `{}`{section}", e.key)
            };
            return Err(self.err(e.line, format!("{why} (supported: {})", allowed.join(", "))));
        }
        Ok(())
    }

    fn string(&self, e: &Entry) -> Result<String, String> {
        match &e.value {
            Value::Scalar(s) => Ok(s.clone()),
            _ => Err(self.err(e.line, format!("`{}` needs a value", e.key))),
        }
    }

    fn map<'e>(&self, e: &'e Entry) -> Result<&'e [Entry], String> {
        match &e.value {
            Value::Map(m) => Ok(m),
            Value::Null => Ok(&[]),
            Value::Scalar(_) => {
                Err(self.err(e.line, format!("`{}` needs indented keys below it", e.key)))
            }
        }
    }
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
        let top = yaml::parse(text).map_err(|e| at.err(e.line, e.message))?;
        at.check_keys(&top, TOP_KEYS, "")?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = WebConfig::default();
        for entry in &top {
            match entry.key.as_str() {
                "tls_server_config" => config.tls = Some(tls(&at, base, entry)?),
                _ => config.auth = users(&at, entry)?.map(Arc::new),
            }
        }
        Ok(config)
    }
}

fn tls(at: &At, base: &Path, section: &Entry) -> Result<TlsAcceptor, String> {
    let entries = at.map(section)?;
    at.check_keys(entries, TLS_KEYS, " in tls_server_config")?;
    let mut fields: BTreeMap<&str, (String, usize)> = BTreeMap::new();
    for e in entries {
        fields.insert(e.key.as_str(), (at.string(e)?, e.line));
    }
    let path = |key: &str| -> Option<(PathBuf, usize)> {
        fields.get(key).map(|(p, line)| (base.join(p), *line))
    };
    let (Some((cert_path, cert_line)), Some((key_path, key_line))) =
        (path("cert_file"), path("key_file"))
    else {
        return Err(at.err(
            section.line,
            "tls_server_config needs both cert_file and key_file",
        ));
    };
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

    let version = |key: &str| -> Result<Option<&'static SupportedProtocolVersion>, String> {
        let Some((v, line)) = fields.get(key) else {
            return Ok(None);
        };
        match v.as_str() {
            "TLS12" => Ok(Some(&rustls::version::TLS12)),
            "TLS13" => Ok(Some(&rustls::version::TLS13)),
            "TLS10" | "TLS11" => Err(at.err(
                *line,
                format!("{key} {v}: vnetprobe speaks TLS 1.2 and 1.3 only"),
            )),
            _ => Err(at.err(*line, format!("{key} {v:?}: use TLS12 or TLS13"))),
        }
    };
    let min = version("min_version")?.unwrap_or(&rustls::version::TLS12);
    let max = version("max_version")?.unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
            .collect();
    if versions.is_empty() {
        let line = fields
            .get("max_version")
            .map(|(_, l)| *l)
            .unwrap_or(section.line);
        return Err(at.err(line, "max_version is below min_version"));
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| at.err(section.line, e))?;
    let ca = fields.get("client_ca_file");
    let auth_type = match fields.get("client_auth_type") {
        Some((t, line)) => (t.as_str(), *line),
        None if ca.is_some() => ("RequireAndVerifyClientCert", section.line),
        None => ("NoClientCert", section.line),
    };
    let builder = match auth_type {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        (kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"), line) => {
            let Some((ca_file, ca_line)) = ca else {
                return Err(at.err(
                    line,
                    format!("client_auth_type {kind} needs client_ca_file"),
                ));
            };
            let ca_path = base.join(ca_file);
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem(&ca_path, *ca_line, "client_ca_file")?)
            {
                let cert = cert.map_err(|e| {
                    at.err(
                        *ca_line,
                        format!("client_ca_file {}: {e}", ca_path.display()),
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    at.err(
                        *ca_line,
                        format!("client_ca_file {}: {e}", ca_path.display()),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(at.err(
                    *ca_line,
                    format!(
                        "client_ca_file {}: no PEM certificate inside",
                        ca_path.display()
                    ),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| at.err(*ca_line, e))?)
        }
        (kind @ ("RequestClientCert" | "RequireAnyClientCert"), line) => {
            return Err(at.err(
                line,
                format!("client_auth_type {kind} (client certificates without verification) is not supported"),
            ));
        }
        (other, line) => {
            return Err(at.err(
                line,
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

fn users(at: &At, section: &Entry) -> Result<Option<BasicAuth>, String> {
    let mut users = BTreeMap::new();
    for e in at.map(section)? {
        let hash = at.string(e)?;
        if e.key.contains(':') {
            return Err(at.err(
                e.line,
                format!(
                    "user {:?}: a Basic auth user name cannot contain ':'",
                    e.key
                ),
            ));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            // The hash is not echoed: a password pasted by mistake must not reach a log.
            return Err(at.err(
                e.line,
                format!(
                    "user {:?}: not a bcrypt hash (make one with `htpasswd -nBC 10 USER`)",
                    e.key
                ),
            ));
        }
        users.insert(e.key.clone(), hash);
    }
    Ok((!users.is_empty()).then(|| BasicAuth::new(users)))
}

/// Basic auth against bcrypt hashes. A password that verified once is remembered by its SHA-256
/// (per user), so a scraper does not pay a bcrypt round on every request.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// bcrypt is slow on purpose: a bound on concurrent checks keeps bad requests from eating
    /// every core.
    slots: Semaphore,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users,
            verified: Mutex::new(HashMap::new()),
            slots: Semaphore::new(2),
        }
    }

    /// Whether an `Authorization` header value names a user and its password.
    pub async fn allows(&self, header: Option<&[u8]>) -> bool {
        let Some((user, password)) = header.and_then(decode) else {
            return false;
        };
        let digest = sha256(password.as_bytes());
        let hash = match self.users.get(&user) {
            Some(h) => h.clone(),
            None => {
                // Spend the same time as for a known user, so timing does not reveal names.
                let any = self.users.values().next().cloned().unwrap_or_default();
                let _ = self.bcrypt(password, any).await;
                return false;
            }
        };
        let remembered = self
            .verified
            .lock()
            .expect("auth cache lock")
            .get(&user)
            .copied();
        if remembered.is_some_and(|d| constant_time_eq(&d, &digest)) {
            return true;
        }
        let ok = self.bcrypt(password, hash).await;
        if ok {
            self.verified
                .lock()
                .expect("auth cache lock")
                .insert(user, digest);
        }
        ok
    }

    async fn bcrypt(&self, password: String, hash: String) -> bool {
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(Path::new("/etc/vnetprobe/web.yml"), text)
    }

    fn header(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_hashes() {
        let hash = bcrypt::hash_with_salt("s3cret", 4, [7; 16])
            .unwrap()
            .to_string();
        let cfg = parse(&format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
        let auth = cfg.auth.unwrap();
        assert!(cfg.tls.is_none());
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert!(
            auth.allows(Some(&header("alice", "s3cret"))).await,
            "remembered"
        );
        assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
        assert!(!auth.allows(Some(&header("bob", "s3cret"))).await);
        assert!(!auth.allows(None).await);
        assert!(!auth.allows(Some(b"Bearer abc")).await);
        assert!(!auth.allows(Some(b"Basic !!!")).await);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (
                "basic_auth_users:\n  alice: $2y$10$short\n",
                ":2: user \"alice\": not a bcrypt hash",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  cert_fiel: b\n",
                ":3: unknown key `cert_fiel` in tls_server_config",
            ),
            (
                "\nhttp_server_config:\n  http2: false\n",
                ":2: `http_server_config` is an exporter-toolkit setting",
            ),
            (
                "tls_server_config:\n  cert_file: a.crt\n",
                ":1: tls_server_config needs both cert_file and key_file",
            ),
            (
                "tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n",
                ":2: cert_file /etc/vnetprobe/none.crt",
            ),
            (
                "basic_auth_users: alice\n",
                ":1: `basic_auth_users` needs indented keys",
            ),
            (
                "basic_auth_users:\n  - alice\n",
                ":2: lists are not supported",
            ),
            (
                "oops: 1\n",
                ":1: unknown key `oops` (supported: tls_server_config, basic_auth_users)",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} parsed"));
            assert!(e.starts_with("/etc/vnetprobe/web.yml:"), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// A folder holding a self-signed cert.pem and key.pem for localhost.
    fn cert_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vnetprobe-webcfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
        dir
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = cert_dir("tls");
        let file = dir.join("web.yml");
        let tls = |extra: &str| {
            WebConfig::parse(
                &file,
                &format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n{extra}"),
            )
        };
        assert!(
            tls("").unwrap().tls.is_some(),
            "paths are relative to the web config's folder"
        );
        assert!(tls("  min_version: TLS13\n").is_ok());
        assert!(
            tls("  client_ca_file: cert.pem\n").is_ok(),
            "a client CA alone means RequireAndVerifyClientCert"
        );
        assert!(
            tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: cert.pem\n")
                .is_ok()
        );
        let cases = [
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                ":5: max_version is below min_version",
            ),
            (
                "  min_version: TLS10\n",
                ":4: min_version TLS10: vnetprobe speaks TLS 1.2 and 1.3 only",
            ),
            (
                "  max_version: 1.3\n",
                ":4: max_version \"1.3\": use TLS12 or TLS13",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                ":4: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
            ),
            (
                "  client_auth_type: RequireAnyClientCert\n",
                ":4: client_auth_type RequireAnyClientCert (client certificates without verification) is not supported",
            ),
            (
                "  client_auth_type: Maybe\n",
                ":4: client_auth_type \"Maybe\"",
            ),
            ("  client_ca_file: key.pem\n", ":4: client_ca_file"),
            (
                "  cipher_suites: x\n",
                ":4: `cipher_suites` is an exporter-toolkit setting that vnetprobe does not support",
            ),
        ];
        for (extra, want) in cases {
            let e = tls(extra)
                .err()
                .unwrap_or_else(|| panic!("{extra:?} was accepted"));
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        let swapped = WebConfig::parse(
            &file,
            "tls_server_config:\n  cert_file: key.pem\n  key_file: cert.pem\n",
        );
        assert!(
            swapped.err().unwrap().contains(":2: cert_file"),
            "a key is not a certificate"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_hash_is_never_echoed() {
        let e = parse("basic_auth_users:\n  alice: hunter2\n")
            .err()
            .unwrap();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn empty_users_mean_no_auth() {
        assert!(parse("basic_auth_users:\n").unwrap().auth.is_none());
        assert!(parse("# nothing\n").unwrap().auth.is_none());
    }
}
