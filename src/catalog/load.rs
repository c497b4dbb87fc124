//! Loading a catalog: files and folders read with a size cap, cut into tables, each table
//! parsed and validated with file, line and field in every error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::check::Written;
use super::sections::{Section, sections};
use super::*;
use crate::context::Cloud;
use crate::context::template::Template;
use Protocol::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    profile: BTreeMap<String, RawProfile>,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    id: Spanned<String>,
    name: String,
    protocol: Protocol,
    host: Spanned<String>,
    #[serde(default)]
    ports: Option<Spanned<Vec<u16>>>,
    profiles: Spanned<Vec<String>>,
    #[serde(default)]
    service_tag: Option<String>,
    #[serde(default)]
    /// `true`, `false`, or the clouds in which the documents require the path.
    required: Option<Spanned<toml::Value>>,
    #[serde(default)]
    private_endpoint: Option<Spanned<String>>,
    /// The path is required only where `private_endpoints` lists this service.
    #[serde(default)]
    required_with_private_endpoint: Option<Spanned<String>>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    client: Option<crate::net::proxy::Client>,
    #[serde(default)]
    expect: Option<Spanned<Expect>>,
    #[serde(default)]
    clouds: Option<Vec<Cloud>>,
    #[serde(default)]
    section: Option<String>,
    why: String,
    fix: String,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    tls: Option<Spanned<bool>>,
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    accept: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    payload: Option<Spanned<String>>,
    #[serde(default)]
    responder: Option<Spanned<bool>>,
    timeout: Option<Spanned<String>>,
}

impl RawTarget {
    /// Refuses a field its protocol does not take: the field, where it is, and which protocols
    /// take it. The one place that knows which fields belong to which protocol.
    fn fields_of_its_protocol(
        &self,
    ) -> Result<(), (&'static str, std::ops::Range<usize>, &'static str)> {
        // An empty port list says nothing, on a DNS target too.
        let ports = self.ports.as_ref().filter(|p| !p.get_ref().is_empty());
        #[rustfmt::skip]
        let given: [(_, _, &[Protocol], _); 7] = [
            (ports.map(|p| p.span()), "ports", &[Tcp, Udp, Tls, Http, Ws], "tcp, udp, tls, http and ws"),
            (self.path.as_ref().map(|p| p.span()), "path", &[Http, Ws], "http and ws"),
            (self.tls.as_ref().map(|t| t.span()), "tls", &[Http, Ws], "http and ws"),
            (self.method.as_ref().map(|m| m.span()), "method", &[Http], "http"),
            (self.accept.as_ref().map(|a| a.span()), "accept", &[Http], "http"),
            (self.payload.as_ref().map(|p| p.span()), "payload", &[Udp], "udp"),
            (self.responder.as_ref().map(|r| r.span()), "responder", &[Tcp, Udp], "tcp and udp"),
        ];
        match given
            .into_iter()
            .find(|(at, _, takes, _)| at.is_some() && !takes.contains(&self.protocol))
        {
            Some((Some(at), field, _, what)) => Err((field, at, what)),
            _ => Ok(()),
        }
    }
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::from_sources(
            embedded::EMBEDDED
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string())),
        )
    }

    /// Loads files and folders (every `*.toml` inside, in name order).
    pub fn load(paths: &[PathBuf]) -> Result<Catalog, CatalogError> {
        let mut sources = Vec::new();
        for path in paths {
            let io_err = |e: std::io::Error| CatalogError {
                file: path.display().to_string(),
                line: None,
                field: None,
                message: e.to_string(),
            };
            if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(io_err)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                if files.is_empty() {
                    return Err(io_err(std::io::Error::other("folder holds no *.toml file")));
                }
                for f in files {
                    sources.push((f.display().to_string(), read(&f)?));
                }
            } else {
                sources.push((path.display().to_string(), read(path)?));
            }
        }
        Catalog::from_sources(sources)
    }

    /// Parses and validates named TOML texts as one catalog.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::default();
        let sources: Vec<(String, String)> = sources.into_iter().collect();
        catalog.digest = digest(&sources);
        let cut: Vec<(&String, Vec<Section>)> =
            sources.iter().map(|(f, t)| (f, sections(t))).collect();
        // Pass 1: the profile tables (and anything that is not a target, to report it), so that
        // every target can be checked against every profile, wherever it is declared.
        for (file, sections) in &cut {
            for section in sections.iter().filter(|s| !s.is_target()) {
                let raw: RawFile = section.parse(file)?;
                for (name, p) in &raw.profile {
                    if catalog.profiles.iter().any(|q| &q.name == name) {
                        return Err(CatalogError {
                            file: file.to_string(),
                            line: Some(section.first_line),
                            field: Some(format!("profile.{name}")),
                            message: format!("profile {name:?} is declared twice"),
                        });
                    }
                    catalog.profiles.push(Profile {
                        name: name.clone(),
                        description: p.description.clone(),
                        default: p.default,
                    });
                }
            }
        }
        for name in BUILTIN_PROFILES {
            if !catalog.profiles.iter().any(|p| p.name == *name) {
                catalog.profiles.push(Profile {
                    name: name.to_string(),
                    description: String::new(),
                    default: false,
                });
            }
        }
        // Pass 2: one target table at a time, validated as soon as it is parsed.
        let tables = cut
            .iter()
            .flat_map(|(_, s)| s.iter())
            .filter(|s| s.is_target());
        catalog.targets.reserve(tables.count());
        // Where each target is written (file and line), for the duplicate check.
        let mut written: Vec<(&str, usize)> = Vec::with_capacity(catalog.targets.capacity());
        for (file, sections) in &cut {
            for section in sections.iter().filter(|s| s.is_target()) {
                for t in section.parse::<RawFile>(file)?.target {
                    let line = section.line(t.get_ref().id.span().start);
                    catalog
                        .targets
                        .push(catalog.validate(file, section, t.into_inner())?);
                    written.push((file, line));
                }
            }
        }
        catalog.refuse_duplicate_ids(&written)?;
        Ok(catalog)
    }

    /// An id written twice is an error at its second place, naming the first. Sorting the
    /// targets' indices by id finds every pair without copying an id.
    fn refuse_duplicate_ids(&self, written: &[(&str, usize)]) -> Result<(), CatalogError> {
        let id = |i: usize| self.targets[i].id.as_str();
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        order.sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
        let duplicate = order
            .windows(2)
            .filter(|pair| id(pair[0]) == id(pair[1]))
            .min_by_key(|pair| pair[1]);
        match duplicate {
            None => Ok(()),
            Some(pair) => {
                let ((first, first_line), (file, line)) = (written[pair[0]], written[pair[1]]);
                Err(CatalogError {
                    file: file.to_string(),
                    line: Some(line),
                    field: Some("id".into()),
                    message: format!(
                        "duplicate target id {:?} (first defined at {first}:{first_line})",
                        id(pair[0])
                    ),
                })
            }
        }
    }

    fn validate(
        &self,
        file: &str,
        section: &Section,
        raw: RawTarget,
    ) -> Result<TargetSpec, CatalogError> {
        let err = |span: std::ops::Range<usize>, field: &str, message: String| CatalogError {
            file: file.to_string(),
            line: Some(section.line(span.start)),
            field: Some(field.to_string()),
            message,
        };
        let id = raw.id.get_ref();
        for (field, value, span, max) in [
            ("id", id, raw.id.span(), MAX_ID),
            ("name", &raw.name, raw.id.span(), MAX_NAME),
            ("host", raw.host.get_ref(), raw.host.span(), MAX_HOST),
        ] {
            let n = value.chars().count();
            if n > max {
                let why = format!("{n} characters long: the most is {max}");
                return Err(err(span, field, why));
            }
        }
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                raw.id.span(),
                "id",
                format!("{id:?} must be lowercase letters, digits and '-'"),
            ));
        }
        let host =
            Template::parse(raw.host.get_ref()).map_err(|m| err(raw.host.span(), "host", m))?;
        if raw.host.get_ref().trim().is_empty() {
            return Err(err(raw.host.span(), "host", "empty host".into()));
        }
        raw.fields_of_its_protocol()
            .map_err(|(field, span, what)| {
                err(
                    span,
                    field,
                    format!("`{field}` applies to {what} targets only"),
                )
            })?;
        let ports = raw
            .ports
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        if let Some(p) = &raw.ports
            && ports.contains(&0)
        {
            return Err(err(p.span(), "ports", "port 0 is not a port".into()));
        }
        if raw.protocol != Protocol::Dns && ports.is_empty() {
            return Err(err(
                raw.id.span(),
                "ports",
                format!("a {} target needs ports", raw.protocol),
            ));
        }
        if raw.profiles.get_ref().is_empty() {
            return Err(err(
                raw.profiles.span(),
                "profiles",
                "at least one profile".into(),
            ));
        }
        for p in raw.profiles.get_ref() {
            if !self.profiles.iter().any(|q| &q.name == p) {
                return Err(err(
                    raw.profiles.span(),
                    "profiles",
                    format!(
                        "unknown profile {p:?} (known: {})",
                        self.profile_names().join(", ")
                    ),
                ));
            }
        }
        let expect = raw
            .expect
            .as_ref()
            .map(|e| *e.get_ref())
            .unwrap_or_default();
        if let Some(e) = &raw.expect
            && matches!(expect, Expect::Private | Expect::Public)
            && raw.protocol != Protocol::Dns
        {
            return Err(err(
                e.span(),
                "expect",
                format!("expect = {:?} applies to dns targets only", expect.as_str()),
            ));
        }
        let check = written(&raw, &err)?;
        let timeout = match &raw.timeout {
            Some(t) => Some(parse_timeout(t.get_ref()).map_err(|m| err(t.span(), "timeout", m))?),
            None => None,
        };
        let required = match &raw.required {
            None => Cloud::ALL.to_vec(),
            Some(r) => parse_required(r.get_ref()).map_err(|m| err(r.span(), "required", m))?,
        };
        let known_service = |p: &Spanned<String>, field: &str| {
            let service = p.get_ref();
            if crate::context::values::PRIVATE_ENDPOINT_SERVICES.contains(&service.as_str()) {
                Ok(service.clone())
            } else {
                Err(err(
                    p.span(),
                    field,
                    format!(
                        "unknown service {service:?} (one of {})",
                        crate::context::values::PRIVATE_ENDPOINT_SERVICES.join(", ")
                    ),
                ))
            }
        };
        let private_endpoint = match &raw.private_endpoint {
            Some(p) => {
                if raw.protocol != Protocol::Dns || expect != Expect::Private {
                    return Err(err(
                        p.span(),
                        "private_endpoint",
                        "applies to dns targets with expect = \"private\" only".into(),
                    ));
                }
                Some(known_service(p, "private_endpoint")?)
            }
            None => None,
        };
        let required_with_private_endpoint = match &raw.required_with_private_endpoint {
            Some(p) => Some(known_service(p, "required_with_private_endpoint")?),
            None => None,
        };
        let direction = raw.direction.unwrap_or_default();
        if direction == Direction::Inbound
            && (!matches!(raw.protocol, Protocol::Tcp | Protocol::Udp)
                || expect != Expect::Reachable)
        {
            return Err(err(
                raw.id.span(),
                "direction",
                "an inbound row is a tcp or udp target with expect = \"reachable\"".into(),
            ));
        }
        if let Some(r) = raw.responder.as_ref().filter(|r| *r.get_ref())
            && raw.expect.is_some()
            && expect != Expect::Reachable
        {
            return Err(err(
                r.span(),
                "responder",
                "a responder target checks that the path works: expect must be \"reachable\""
                    .into(),
            ));
        }
        let service_tag = match raw.service_tag {
            Some(tag) => {
                let parsed =
                    Template::parse(&tag).map_err(|m| err(raw.id.span(), "service_tag", m))?;
                Some((tag, parsed))
            }
            None => None,
        };
        Ok(TargetSpec {
            id: id.clone(),
            name: raw.name,
            host,
            check,
            ports,
            profiles: raw.profiles.into_inner(),
            service_tag,
            required,
            expect,
            private_endpoint,
            required_with_private_endpoint,
            direction,
            client: raw.client.unwrap_or_default(),
            clouds: raw.clouds.unwrap_or_else(|| Cloud::ALL.to_vec()),
            section: raw.section,
            why: raw.why,
            fix: raw.fix,
            timeout,
        })
    }
}

/// The check a target's table writes: its protocol's fields (`fields_of_its_protocol` has
/// refused the others), each value judged, with the protocol's defaults for the rest.
fn written(
    raw: &RawTarget,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> CatalogError,
) -> Result<Written, CatalogError> {
    let path = match &raw.path {
        Some(p) => {
            // A path variable expands to a checked path ("/..."), e.g. {exfil_path}.
            if !p.get_ref().starts_with('/') && !p.get_ref().starts_with('{') {
                return Err(err(
                    p.span(),
                    "path",
                    format!("{:?} must start with '/'", p.get_ref()),
                ));
            }
            Template::parse(p.get_ref()).map_err(|m| err(p.span(), "path", m))?
        }
        None => Template::parse("/").expect("literal"),
    };
    let method = match &raw.method {
        Some(m) => Method::from_label(&m.get_ref().to_ascii_uppercase()).ok_or_else(|| {
            err(
                m.span(),
                "method",
                format!("{:?}: GET or HEAD", m.get_ref()),
            )
        })?,
        None => Method::Get,
    };
    let accept = match &raw.accept {
        Some(a) => {
            let accept: Vec<StatusMatch> = a
                .get_ref()
                .iter()
                .map(StatusMatch::parse)
                .collect::<Result<_, _>>()
                .map_err(|m| err(a.span(), "accept", m))?;
            if accept.is_empty() {
                return Err(err(
                    a.span(),
                    "accept",
                    "an empty list accepts nothing".into(),
                ));
            }
            accept
        }
        None => DEFAULT_ACCEPT.to_vec(),
    };
    let payload = match &raw.payload {
        Some(p) => parse_payload(p.get_ref()).map_err(|m| err(p.span(), "payload", m))?,
        None => Vec::new(),
    };
    let tls = raw.tls.as_ref().is_none_or(|t| *t.get_ref());
    let responder = raw.responder.as_ref().is_some_and(|r| *r.get_ref());
    let check = match raw.protocol {
        Protocol::Dns => Written::Dns,
        Protocol::Tcp => Written::Tcp { responder },
        Protocol::Udp => Written::Udp { payload, responder },
        Protocol::Tls => Written::Tls,
        Protocol::Http => Written::Http {
            tls,
            path,
            method,
            accept,
        },
        Protocol::Ws => Written::Ws { tls, path },
    };
    Ok(check)
}

fn read(path: &Path) -> Result<String, CatalogError> {
    crate::input::read_text(path, crate::input::CATALOG).map_err(|e| CatalogError {
        file: path.display().to_string(),
        line: None,
        field: None,
        message: e.to_string(),
    })
}

/// `required`: a boolean, or the list of clouds that require the path.
fn parse_required(raw: &toml::Value) -> Result<Vec<Cloud>, String> {
    const FORM: &str = "true, false, or a list of clouds like [\"public\"]";
    match raw {
        toml::Value::Boolean(true) => Ok(Cloud::ALL.to_vec()),
        toml::Value::Boolean(false) => Ok(Vec::new()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(Cloud::parse)
                    .ok_or_else(|| format!("{v:?} is not a cloud (public, usgov, china): {FORM}"))
            })
            .collect(),
        other => Err(format!("{other:?}: {FORM}")),
    }
}

/// The longest per-target timeout: a rare slow path, not a way to hang a run.
pub const MAX_TARGET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (examples: 10s, 1500ms)"))?;
    if d.is_zero() || d > MAX_TARGET_TIMEOUT {
        return Err(format!(
            "{s:?}: between 1ms and {} s",
            MAX_TARGET_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

fn parse_payload(s: &str) -> Result<Vec<u8>, String> {
    match s.strip_prefix("hex:") {
        Some(hex) => {
            let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
            if !hex.len().is_multiple_of(2) {
                return Err("hex payload needs an even number of digits".into());
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&hex[i..i + 2], 16)
                        .map_err(|_| format!("bad hex {:?}", &hex[i..i + 2]))
                })
                .collect()
        }
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// `sha256:` and 16 hex digits over each source's name and text, each prefixed by its length
/// (so no two different file sets hash alike by moving bytes between names and texts).
fn digest(sources: &[(String, String)]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (name, text) in sources {
        for part in [name, text] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
    }
    let hex: String = ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}
