//! Which proxy a probe goes through: the proxy URL (credentials masked whenever shown) and the
//! choice curl makes from its environment variables, read from an injectable map.
//!
//! curl's choice, followed here (lib/url.c, detect_proxy): for a URL with scheme S it reads
//! `S_proxy`, then `S_PROXY` (except `HTTP_PROXY`: curl ignores the upper-case form because a
//! CGI environment lets any client set it through a `Proxy:` request header), then for ws and
//! wss the http and https variables, then `all_proxy`, then `ALL_PROXY`. An empty variable
//! counts as unset. `no_proxy` wins over `NO_PROXY`. `--proxy` replaces the variables, but
//! `NO_PROXY` still applies to it (as with curl's `-x`); `--no-proxy` turns proxies off.
//! A proxy URL without a port uses 1080 and one without a scheme is `http://`, as in curl.
//!
//! A proxy variable that cannot be used (bad syntax, `https://` or SOCKS proxies) is a usage
//! error naming the variable, found before any probe runs: a probe run that silently ignored
//! the proxy the workload uses would prove nothing. Only the variables curl would consult for
//! http, https, ws and wss URLs are checked.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;

use super::NetConfig;
use super::noproxy::NoProxy;

/// The variables that decide proxying, in the order they are documented above.
pub const PROXY_VARS: &[&str] = &[
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "wss_proxy",
    "WSS_PROXY",
    "ws_proxy",
    "WS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Default port of a proxy URL without one (curl's CURL_DEFAULT_PROXY_PORT).
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The proxy variables of this process, for `NetConfig::proxy_env`: every `*_proxy` name in
/// any case (Python requests reads them all, curl the ones in `PROXY_VARS`).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.to_ascii_lowercase().ends_with("_proxy"))
        .take(64)
        .collect()
}

crate::outcome::labelled! {
    /// Whose route a probe takes: curl's, or Python requests' (what pip and conda use). Where the
    /// two differ the result says so; the probe goes the way the target's users go.
    #[derive(Default)]
    pub enum Client {
        #[default]
        Curl => "curl",
        /// pip: Python requests with urllib's environment rules, or pip's own proxy setting.
        Pip => "pip",
        /// conda: the same, or `.condarc` `proxy_servers`.
        Conda => "conda",
    }
}

impl Client {
    pub fn describe(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Pip => "pip (Python requests)",
            Client::Conda => "conda (Python requests)",
        }
    }
}

/// How a probe goes, and what the report should say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    /// curl and Python requests would not go the same way.
    pub warning: Option<String>,
    /// The proxy setting came from a file (the shell profile, pip.conf, .condarc).
    pub source: Option<String>,
}

crate::outcome::labelled! {
    /// The scheme a probe's URL would have: what decides which variable applies.
    pub enum Scheme {
        Http => "http",
        Https => "https",
        Ws => "ws",
        Wss => "wss",
    }
}

impl Scheme {
    /// The variables curl reads for this scheme, in order.
    fn variables(self) -> &'static [&'static str] {
        match self {
            Scheme::Http => &["http_proxy", "all_proxy", "ALL_PROXY"],
            Scheme::Https => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
            Scheme::Ws => &[
                "ws_proxy",
                "WS_PROXY",
                "http_proxy",
                "all_proxy",
                "ALL_PROXY",
            ],
            Scheme::Wss => &[
                "wss_proxy",
                "WSS_PROXY",
                "https_proxy",
                "HTTPS_PROXY",
                "all_proxy",
                "ALL_PROXY",
            ],
        }
    }
}

/// Proxy credentials, percent-decoded. Never printed.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    user: String,
    password: String,
}

/// An HTTP proxy. `Display` and `Debug` show `http://user:***@host:port` (`http://***@host:port`
/// for a user without a password, a token): the password, or the token, never.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    credentials: Option<Credentials>,
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        // A user alone (a token: `http://TOKEN@proxy`) is the secret itself: masked whole.
        match &self.credentials {
            Some(c) if c.password.is_empty() => f.write_str("***@")?,
            Some(c) => write!(f, "{}:***@", crate::printable::printable(&c.user))?,
            None => {}
        }
        write!(f, "{}", crate::address::authority(&self.host, self.port))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl ProxyUrl {
    /// Parses `[http://][user[:password]@]host[:port][/]` as curl does, with the `url` crate.
    /// Errors never repeat the input: it may hold a password.
    pub fn parse(raw: &str) -> Result<ProxyUrl, String> {
        let raw = raw.trim();
        let rest = match raw.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => rest,
                "https" => {
                    return Err("https:// proxies (TLS to the proxy itself) are not supported: use the proxy's \
                                http:// address (the tunnel to the target stays end-to-end TLS)"
                        .into());
                }
                s if s.starts_with("socks") => {
                    return Err(format!(
                        "{s}:// proxies are not supported: vnetprobe tunnels through HTTP proxies with CONNECT"
                    ));
                }
                s => {
                    return Err(format!(
                        "unsupported proxy scheme {s:?} (use http://host:port)"
                    ));
                }
            },
            None => raw,
        };
        // Under a scheme of no known default port, `url` keeps an explicit `:80`, which curl's
        // default proxy port (1080) must not replace.
        let url = url::Url::parse(&format!("proxy://{rest}")).map_err(|e| match e {
            url::ParseError::InvalidPort => {
                "the proxy port is not a number from 1 to 65535".to_string()
            }
            url::ParseError::InvalidIpv6Address => {
                "the proxy address in brackets is not an IPv6 address (or its '[' is unclosed)"
                    .to_string()
            }
            _ => NOT_A_HOST.to_string(),
        })?;
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            None => return Err(NOT_A_HOST.into()),
        };
        let valid = host.parse::<std::net::IpAddr>().is_ok()
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        if !valid {
            return Err(NOT_A_HOST.into());
        }
        let port = match url.port() {
            None => DEFAULT_PROXY_PORT,
            Some(0) => return Err("the proxy port is not a number from 1 to 65535".into()),
            Some(p) => p,
        };
        let credentials = match (url.username(), url.password()) {
            ("", None)
                if !rest
                    .split(['/', '?', '#'])
                    .next()
                    .unwrap_or_default()
                    .contains('@') =>
            {
                None
            }
            (user, password) => Some(Credentials {
                user: decode(user, "user name")?,
                password: decode(password.unwrap_or_default(), "password")?,
            }),
        };
        Ok(ProxyUrl {
            host,
            port,
            credentials,
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The `Proxy-Authorization` header value, when the URL has credentials.
    pub fn authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|c| {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.user, c.password));
            format!("Basic {token}")
        })
    }
}

const NOT_A_HOST: &str = "the proxy host is missing or not a host name (expected http://host:port)";

/// A percent-encoded part of the user info, decoded; curl refuses a `%` that starts no escape.
fn decode(s: &str, what: &str) -> Result<String, String> {
    let bad = || format!("the proxy {what} has a bad %-escape or is not UTF-8");
    let bytes = s.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return Err(bad());
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad())
}

/// A proxy setting as it may be shown: without user info it is shown as is; with it, as the
/// masked URL, or a placeholder when it does not parse.
pub fn mask(raw: &str) -> String {
    if !raw.contains('@') {
        return raw.to_string();
    }
    ProxyUrl::parse(raw)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| "(unparsable proxy URL)".into())
}

/// How a probe reaches its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No proxy is configured (or `--no-proxy`).
    Direct,
    /// A proxy is configured, but `NO_PROXY` names this host.
    Bypassed,
    Proxy(ProxyUrl),
}

impl Route {
    /// Where the route goes, for messages.
    pub fn describe(&self) -> String {
        match self {
            Route::Direct => "direct".into(),
            Route::Bypassed => "direct (NO_PROXY matches)".into(),
            Route::Proxy(p) => format!("through {p}"),
        }
    }

    /// A short observation for the report.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            Route::Direct => None,
            Route::Bypassed => Some("NO_PROXY names this host"),
            Route::Proxy(_) => None,
        }
    }
}

/// `no_proxy`, else `NO_PROXY`, as written: blanks around `*` are significant to both clients.
fn no_proxy_value(env: &BTreeMap<String, String>) -> &str {
    ["no_proxy", "NO_PROXY"]
        .iter()
        .find_map(|k| env.get(*k).filter(|v| !v.is_empty()))
        .map_or("", String::as_str)
}

fn var<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A proxy setting that does not parse: which setting (`--proxy` or its config file field, or
/// an environment variable) and why, never the value (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The environment variable; `None` for the proxy given to vnetprobe itself.
    pub variable: Option<&'static str>,
    pub why: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variable {
            Some(name) => write!(f, "environment variable {name}: {}", self.why),
            None => write!(f, "--proxy: {}", self.why),
        }
    }
}

/// The proxy curl would use for `scheme`, and where it came from (`--proxy` or a variable).
fn configured(cfg: &NetConfig, scheme: Scheme) -> Result<Option<ProxyUrl>, SettingError> {
    if cfg.no_proxy {
        return Ok(None);
    }
    if let Some(raw) = cfg.proxy.as_deref() {
        return ProxyUrl::parse(raw).map(Some).map_err(|why| SettingError {
            variable: None,
            why,
        });
    }
    let Some((name, raw)) = environment_proxy(cfg, scheme) else {
        return Ok(None);
    };
    ProxyUrl::parse(raw).map(Some).map_err(|why| SettingError {
        variable: Some(name),
        why,
    })
}

/// The variable curl takes the proxy of `scheme` from, and its value (unchecked, unmasked).
pub fn environment_proxy(cfg: &NetConfig, scheme: Scheme) -> Option<(&'static str, &str)> {
    scheme
        .variables()
        .iter()
        .find_map(|name| Some((*name, var(&cfg.proxy_env, name)?)))
}

/// Decides how a probe of `scheme://host:port` travels. The error is a configuration error.
pub fn route(cfg: &NetConfig, scheme: Scheme, host: &str, port: u16) -> Result<Route, String> {
    let Some(proxy) = configured(cfg, scheme).map_err(|e| e.to_string())? else {
        return Ok(Route::Direct);
    };
    if NoProxy::parse(no_proxy_value(&cfg.proxy_env)).matches(host, port) {
        return Ok(Route::Bypassed);
    }
    Ok(Route::Proxy(proxy))
}

/// How `client` reaches `scheme://host:port`, with a warning when curl and Python requests
/// would not go the same way (only http and https: nothing else is fetched with requests).
pub fn decide(
    cfg: &NetConfig,
    client: Client,
    scheme: Scheme,
    host: &str,
    port: u16,
) -> Result<Decision, String> {
    let curl = route(cfg, scheme, host, port)?;
    let env_source = || cfg.proxy_env_source.clone();
    let explicit = cfg.no_proxy || cfg.proxy.is_some();
    if explicit || !matches!(scheme, Scheme::Http | Scheme::Https) {
        let source = matches!(curl, Route::Proxy(_)).then(env_source).flatten();
        return Ok(Decision {
            route: curl,
            warning: None,
            source,
        });
    }
    // pip's and conda's own setting is an explicit proxy to requests: NO_PROXY does not apply.
    let own = match client {
        Client::Pip => cfg.proxy_files.pip.clone(),
        Client::Conda => cfg.proxy_files.conda.as_ref().and_then(|(file, servers)| {
            servers
                .get(scheme.as_str())
                .map(|url| (format!("{file} (proxy_servers)"), url.clone()))
        }),
        Client::Curl => None,
    };
    let (python, python_source) = match own {
        Some((source, raw)) => (
            Route::Proxy(ProxyUrl::parse(&raw).map_err(|e| format!("{source}: {e}"))?),
            Some(source),
        ),
        None => {
            let r = requests_route(cfg, scheme, host, port)?;
            let source = matches!(r, Route::Proxy(_)).then(env_source).flatten();
            (r, source)
        }
    };
    let python_client = if client == Client::Curl {
        Client::Pip
    } else {
        client
    };
    let warning = (curl != python).then(|| {
        format!(
            "curl would go {}, {} {}: the proxy settings read differently; this probe follows {}",
            curl.describe(),
            python_client.describe(),
            python.describe(),
            client.describe()
        )
    });
    let (route, source) = match client {
        Client::Curl => {
            let source = matches!(curl, Route::Proxy(_)).then(env_source).flatten();
            (curl, source)
        }
        _ => (python, python_source),
    };
    Ok(Decision {
        route,
        warning,
        source,
    })
}

/// Python requests' route: urllib's proxy variables (lower case wins, an empty lower-case one
/// unsets, `all` is the fallback) and its NO_PROXY reading.
fn requests_route(cfg: &NetConfig, scheme: Scheme, host: &str, port: u16) -> Result<Route, String> {
    let proxies = requests_proxies(&cfg.proxy_env);
    let key = scheme.as_str();
    let Some((name, raw)) = proxies.get(key).or_else(|| proxies.get("all")) else {
        return Ok(Route::Direct);
    };
    let list = no_proxy_value(&cfg.proxy_env);
    let default_port = if scheme == Scheme::Https { 443 } else { 80 };
    let explicit_port = (port != default_port).then_some(port);
    if NoProxy::parse(list).matches_requests(host, explicit_port) {
        return Ok(Route::Bypassed);
    }
    ProxyUrl::parse(raw)
        .map(Route::Proxy)
        .map_err(|e| format!("environment variable {name}: {e}"))
}

/// urllib.request.getproxies_environment over `env`: scheme -> (variable, value).
fn requests_proxies(env: &BTreeMap<String, String>) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for (name, value) in env {
        let lower = name.to_ascii_lowercase();
        if let Some(scheme) = lower.strip_suffix("_proxy")
            && !value.is_empty()
        {
            out.insert(scheme.to_string(), (name.clone(), value.clone()));
        }
    }
    for (name, value) in env {
        if let Some(prefix) = name.strip_suffix("_proxy") {
            let scheme = prefix.to_ascii_lowercase();
            if value.is_empty() {
                out.remove(&scheme);
            } else {
                out.insert(scheme, (name.clone(), value.clone()));
            }
        }
    }
    out
}

/// Checks every proxy setting a run could use, before the run: the error names the flag or
/// variable, never its value.
pub fn validate(cfg: &NetConfig) -> Result<(), SettingError> {
    for scheme in [Scheme::Http, Scheme::Https, Scheme::Ws, Scheme::Wss] {
        configured(cfg, scheme)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
