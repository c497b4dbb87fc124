//! A run's plan: the selection (context and targets) and the network settings, validated,
//! and how to run it. Commands build one; `serve` and `--wait` run one again and again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::catalog::{Catalog, Target, auto};
use crate::cli::{NetArgs, SelectArgs};
use crate::context::{ConfigFile, Context, discover};
use crate::net::NetConfig;
use crate::net::echo::Key;
use crate::net::proxy::{ProxyUrl, Scheme};
use crate::probe::ProbeEnv;
use crate::probe::dns::DnsCache;
use crate::report::Report;
use crate::runner::{self, Limits};
use crate::settings::{self, Layers, Origin, Setting, SettingError, Shown};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_CONCURRENCY: usize = 32;

/// A usage, config or catalog error: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, UsageError>;

/// Entry point of the binary.
/// The runtime of a one-shot run (`check`, `probe`): one thread. Probing is waiting, and a
/// second worker only adds the cost of handing tasks and wake-ups between threads (at 10,000
/// loopback targets, a third of the CPU went to futex calls); the blocking pool still takes
/// certificate loading.
pub fn one_shot_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The runtime of a daemon (`serve`, `listen`): two workers, so answering scrapes or echoes
/// never waits behind a probe run.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("VNETPROBE_"))
        .collect()
}

/// Flags > environment > config file > discovery, for the variables; and how discovery ran
/// (its node root is where the users' proxy files are read).
pub fn layer_context(select: &SelectArgs) -> Result<(ConfigFile, Context, discover::Settings)> {
    layer_context_for(select, false)
}

/// `layer_context`; with `node_facts` (a JSON report that `merge` may read), IMDS is asked for
/// the node's facts (address, subnet, VM size, zone) even when the region is known.
fn layer_context_for(
    select: &SelectArgs,
    node_facts: bool,
) -> Result<(ConfigFile, Context, discover::Settings)> {
    let file = ConfigFile::load(select.config.as_deref())?;
    // Flags arrive checked (cli's value parsers use the same rules as the file's values).
    let mut vars = Vec::new();
    if let Some(r) = &select.region {
        vars.push(("region".to_string(), r.clone()));
    }
    vars.extend(select.set.iter().cloned());
    let env = env_map();
    let mut ctx = Context::build(select.cloud, &vars, &env, &file)?;
    let flags = discover::Flags {
        no_discover: select.no_discover,
        imds_endpoint: select.imds_endpoint.as_deref(),
        node_root: select.node_root.as_deref(),
    };
    let settings = discover::Settings::resolve(flags, &env, &file)?;
    let identity = node_facts
        || select.profiles.iter().any(|p| p == "public-ip")
        || file
            .profiles
            .as_ref()
            .is_some_and(|p| p.iter().any(|p| p == "public-ip"));
    discover::discover(&mut ctx, &settings, &discover::process_env(), identity);
    Ok((file, ctx, settings))
}

/// The proxy settings of the node's users (discovery): the shell profile's exports stand in
/// for the process environment when it has no proxy variable; pip's and conda's own settings
/// are kept for their targets.
fn users_proxy_settings(net: &mut NetConfig, root: &std::path::Path) {
    use crate::net::proxy_files::{self, ProxyFiles};
    let home = std::env::var("HOME").ok();
    let pip_proxy = std::env::var("PIP_PROXY").ok();
    let files = ProxyFiles::read(
        root,
        &proxy_files::homes(root, home.as_deref()),
        pip_proxy.as_deref(),
    );
    let env_has_proxy = net
        .proxy_env
        .iter()
        .any(|(k, v)| !v.is_empty() && !k.eq_ignore_ascii_case("no_proxy"));
    if !env_has_proxy && let Some((source, vars)) = &files.shell {
        log::info!("proxy variables from {source}");
        net.proxy_env = vars.clone();
        net.proxy_env_source = Some(source.clone());
    }
    net.proxy_files = files;
}

/// Everything a check needs, validated: what to check (the context and the targets selected
/// from the catalog) and how (the network settings, the same whatever the selection).
pub struct Plan {
    pub context: Context,
    /// Shared with every run's results, never copied (a run of 10,000 targets copied 6 MB).
    pub targets: Vec<Arc<Target>>,
    /// What selected the targets, for the error when nothing was selected.
    pub selection: String,
    pub network: Network,
    /// The digest of the catalog files loaded (None for `probe`'s one target).
    pub catalog_digest: Option<String>,
    /// Path tracing after the run (`check --trace`, `probe trace`): which results, and the
    /// highest TTL.
    pub trace: Option<(runner::TraceScope, u8)>,
}

/// How probes run: limits, resolver, proxy and trust, strictness.
pub struct Network {
    pub limits: Limits,
    pub dns_server: Option<std::net::SocketAddr>,
    pub net: NetConfig,
    /// `--strict`: unconfirmed passes and required skips fail.
    pub strict: bool,
    /// Azure's own view from `--service-tags`, `--nsg`, `--routes`.
    pub azure: Option<Arc<crate::azure::AzureData>>,
}

/// The targets of a check: the catalog (embedded, the flags' or the config file's) expanded
/// against the context and selected by profile (asked for, or chosen from the context) and
/// `--only`; with words for the selection.
fn select_targets(
    select: &SelectArgs,
    file: &ConfigFile,
    ctx: &Context,
) -> Result<(Vec<Target>, String, String)> {
    let catalog_paths: Vec<PathBuf> = if select.catalogs.is_empty() {
        file.catalog.clone().unwrap_or_default()
    } else {
        select.catalogs.clone()
    };
    let catalog = if catalog_paths.is_empty() {
        Catalog::embedded()?
    } else {
        Catalog::load(&catalog_paths)?
    };
    let profiles = if select.profiles.is_empty() {
        file.profiles.clone().unwrap_or_default()
    } else {
        select.profiles.clone()
    };
    catalog
        .check_profiles(&profiles)
        .map_err(|e| format!("--profile: {e}"))?;
    let chosen = profiles.is_empty();
    let profiles = if chosen {
        auto::choose_profiles(ctx, &catalog.default_profiles(), &catalog.profile_names())
    } else {
        profiles
    };
    let only = select.only.clone().or(file.only.clone());
    let mut targets = catalog.expand(ctx, &profiles, only.as_deref());
    let mut selection = format!("profiles {}", profiles.join(", "));
    if profiles.is_empty() {
        selection = "every profile".into();
    }
    if let Some(glob) = &only {
        let from = if select.only.is_some() {
            "--only"
        } else {
            "`only` of the config file"
        };
        selection = format!("{from} {glob:?} with {selection}");
    }
    selection = format!("{selection} in the {} cloud", ctx.cloud());
    if chosen {
        log::info!("profiles chosen from the context: {}", profiles.join(", "));
        targets.retain(|t| auto::applies(ctx, t));
    }

    Ok((targets, selection, catalog.digest().to_string()))
}

/// The network settings as resolved, each with its origin.
struct NetSettings {
    timeout: Setting<Duration>,
    concurrency: Setting<usize>,
    dns_server: Option<Setting<SocketAddr>>,
    ca_file: Option<Setting<PathBuf>>,
    public_roots: Option<Setting<PathBuf>>,
    proxy: Option<Setting<String>>,
    no_proxy: Setting<bool>,
    allow_intercept: Setting<bool>,
    strict: Setting<bool>,
    key_file: Option<Setting<PathBuf>>,
    service_tags: Option<Setting<PathBuf>>,
    nsg: Option<Setting<Vec<PathBuf>>>,
    routes: Option<Setting<PathBuf>>,
    app_rule_ports: Option<Setting<Vec<u16>>>,
    vnet_prefix: Option<Setting<Vec<String>>>,
}

impl NetSettings {
    /// Flags over `VNETPROBE_*` over the config file over the defaults, each checked by the
    /// same rule whatever its source.
    fn resolve(
        net: Option<&NetArgs>,
        file: &ConfigFile,
        env: &BTreeMap<String, String>,
    ) -> std::result::Result<NetSettings, SettingError> {
        let flag = |name: &str, on: fn(&NetArgs) -> bool| {
            settings::flag(name, net.is_some_and(on).then_some(true))
        };
        Ok(NetSettings {
            timeout: Layers::new(|raw: String| settings::duration(&raw, &settings::TIMEOUT))
                .checked(settings::flag("--timeout", net.and_then(|n| n.timeout)))
                .given(file.at("timeout", file.timeout.as_ref()))
                .or(DEFAULT_TIMEOUT)?,
            concurrency: Layers::new(|n: u64| settings::count(n, &settings::CONCURRENCY))
                .checked(settings::flag(
                    "--concurrency",
                    net.and_then(|n| n.concurrency),
                ))
                .given(file.at("concurrency", file.concurrency.as_ref()))
                .or(DEFAULT_CONCURRENCY)?,
            dns_server: Layers::new(|raw: String| crate::address::parse_server(&raw))
                .checked(settings::flag(
                    "--dns-server",
                    net.and_then(|n| n.dns_server),
                ))
                .given(file.at("dns-server", file.dns_server.as_ref()))
                .optional()?,
            ca_file: Layers::new(existing)
                .given(settings::flag(
                    "--ca-file",
                    net.and_then(|n| n.ca_file.clone()),
                ))
                .given(file.at("ca-file", file.ca_file.as_ref()))
                .optional()?,
            public_roots: Layers::new(|raw: String| existing(PathBuf::from(raw)))
                .given(settings::env(env, "VNETPROBE_PUBLIC_ROOTS"))
                .optional()?,
            // The proxy URL may hold a password: its errors never repeat it.
            proxy: Layers::new(|raw: String| ProxyUrl::parse(&raw).map(|_| raw))
                .unquoted()
                .given(settings::flag("--proxy", net.and_then(|n| n.proxy.clone())))
                .given(file.at("proxy", file.proxy.as_ref()))
                .optional()?,
            no_proxy: Layers::new(Ok)
                .checked(flag("--no-proxy", |n| n.no_proxy))
                // `--proxy` overrides a `no-proxy = true` of the file.
                .checked(settings::flag(
                    "--proxy",
                    net.and_then(|n| n.proxy.as_ref().map(|_| false)),
                ))
                .checked(file.at("no-proxy", file.no_proxy.as_ref()))
                .or(false)?,
            allow_intercept: Layers::new(Ok)
                .checked(flag("--allow-intercept", |n| n.allow_intercept))
                .checked(file.at("allow-intercept", file.allow_intercept.as_ref()))
                .or(false)?,
            strict: Layers::new(Ok)
                .checked(flag("--strict", |n| n.strict))
                .checked(file.at("strict", file.strict.as_ref()))
                .or(false)?,
            key_file: Layers::new(Ok)
                .checked(settings::flag(
                    "--key-file",
                    net.and_then(|n| n.key_file.clone()),
                ))
                .checked(file.at(
                    "listen.key-file",
                    file.listen.as_ref().and_then(|l| l.key_file.as_ref()),
                ))
                .optional()?,
            service_tags: Layers::new(existing)
                .given(settings::flag(
                    "--service-tags",
                    net.and_then(|n| n.service_tags.clone()),
                ))
                .given(file.at("service-tags", file.service_tags.as_ref()))
                .optional()?,
            nsg: Layers::new(|files: Vec<PathBuf>| files.into_iter().map(existing).collect())
                .given(settings::flag(
                    "--nsg",
                    net.map(|n| n.nsg.clone()).filter(|n| !n.is_empty()),
                ))
                .given(file.at("nsg", file.nsg.as_ref()))
                .optional()?,
            routes: Layers::new(existing)
                .given(settings::flag(
                    "--routes",
                    net.and_then(|n| n.routes.clone()),
                ))
                .given(file.at("routes", file.routes.as_ref()))
                .optional()?,
            app_rule_ports: Layers::new(|ports: Vec<u16>| match ports.iter().find(|p| **p == 0) {
                Some(_) => Err("a port is 1 to 65535".to_string()),
                None => Ok(ports),
            })
            .given(settings::flag(
                "--app-rule-port",
                net.map(|n| n.app_rule_ports.clone())
                    .filter(|p| !p.is_empty()),
            ))
            .given(file.at("app-rule-ports", file.app_rule_ports.as_ref()))
            .optional()?,
            vnet_prefix: Layers::new(vnet_prefixes)
                .given(settings::flag(
                    "--vnet-prefix",
                    net.map(|n| n.vnet_prefix.clone()).filter(|n| !n.is_empty()),
                ))
                .given(file.at("vnet-prefix", file.vnet_prefix.as_ref()))
                .optional()?,
        })
    }

    /// What the probes are handed; the users' proxy settings and the files are added after.
    fn net_config(&self) -> NetConfig {
        let value = |s: &Option<Setting<PathBuf>>| s.as_ref().map(|s| s.value.clone());
        NetConfig {
            ca_file: value(&self.ca_file),
            public_roots: value(&self.public_roots),
            allow_intercept: self.allow_intercept.value,
            proxy: self.proxy.as_ref().map(|s| s.value.clone()),
            no_proxy: self.no_proxy.value,
            proxy_env: crate::net::proxy::process_env(),
            proxy_env_source: None,
            proxy_files: Default::default(),
            peer_key: None,
            app_rule_ports: self
                .app_rule_ports
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
        }
    }

    /// Each setting as `vnetprobe context` shows it; `net` for the proxy of the environment.
    fn shown(&self, net: &NetConfig) -> BTreeMap<&'static str, Shown> {
        let path =
            |s: &Option<Setting<PathBuf>>| Shown::of(s.as_ref(), |p| p.display().to_string());
        BTreeMap::from([
            (
                "timeout",
                self.timeout
                    .shown(|d| humantime::format_duration(*d).to_string()),
            ),
            ("concurrency", self.concurrency.shown(usize::to_string)),
            (
                "dns-server",
                Shown::of(self.dns_server.as_ref(), |a| a.to_string()),
            ),
            ("ca-file", path(&self.ca_file)),
            ("public-roots", path(&self.public_roots)),
            ("proxy", proxy_shown(self.proxy.as_ref(), net)),
            ("no-proxy", self.no_proxy.shown(bool::to_string)),
            (
                "allow-intercept",
                self.allow_intercept.shown(bool::to_string),
            ),
            ("strict", self.strict.shown(bool::to_string)),
            ("key-file", path(&self.key_file)),
            ("service-tags", path(&self.service_tags)),
            (
                "nsg",
                Shown::of(self.nsg.as_ref(), |f| {
                    f.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }),
            ),
            ("routes", path(&self.routes)),
            (
                "app-rule-ports",
                Shown::of(self.app_rule_ports.as_ref(), |p| {
                    p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
                }),
            ),
            (
                "vnet-prefix",
                Shown::of(self.vnet_prefix.as_ref(), |p| p.join(",")),
            ),
        ])
    }

    /// Reads the files the settings name, for commands that probe: the peer key, the trust
    /// files (a bad one is a usage error naming its setting, not a failed probe), and the
    /// system store (which may be empty or absent, but never a device the TLS library would
    /// read without end). The proxy variables of the environment must parse too.
    fn load_files(&self, net: &mut NetConfig) -> Result<()> {
        crate::net::proxy::validate(net).map_err(|e| SettingError {
            // vnetprobe's own proxy parsed when resolved: what is left is a variable's.
            origin: e
                .variable
                .map_or_else(|| Origin::flag("--proxy"), Origin::env),
            raw: None,
            why: e.why,
        })?;
        net.peer_key = self
            .key_file
            .as_ref()
            .map(|k| k.load(|p| Key::load(p)))
            .transpose()?;
        for pem in [&self.ca_file, &self.public_roots].into_iter().flatten() {
            pem.load(|p| crate::net::tls::certificates(p))?;
        }
        if let Some(path) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from)
            && path.exists()
        {
            let system = Setting {
                value: path,
                origin: Origin::env("SSL_CERT_FILE"),
            };
            system.load(|p| crate::input::read(p, crate::input::PEM).map_err(|e| e.to_string()))?;
        }
        Ok(())
    }

    /// Azure's own view (service tags, NSG rules, routes), read from the files named; an error
    /// names the setting and the file.
    fn azure(&self) -> Result<Option<Arc<crate::azure::AzureData>>> {
        let (tags, nsg, routes) = (&self.service_tags, &self.nsg, &self.routes);
        if tags.is_none() && nsg.is_none() && routes.is_none() {
            return Ok(None);
        }
        let vnet = self.vnet_prefix.as_ref().map(|s| s.value.as_slice());
        let data = crate::azure::AzureData::load(
            tags.as_ref().map(|s| s.value.as_path()),
            nsg.as_ref().map(|s| s.value.as_slice()).unwrap_or_default(),
            routes.as_ref().map(|s| s.value.as_path()),
            vnet.unwrap_or_default(),
        )?;
        Ok(Some(Arc::new(data)))
    }
}

impl Network {
    /// The settings resolved; with discovery on (`node_root`), the node users' proxy settings
    /// stand in for an environment without any. With `net` (commands that probe), the files
    /// named are read now, so a bad one is a usage error naming its setting.
    pub fn resolve(
        net: Option<&NetArgs>,
        file: &ConfigFile,
        node_root: Option<&Path>,
    ) -> Result<Network> {
        let (settings, mut netcfg) = Network::layered(net, file, node_root)?;
        let mut azure = None;
        if net.is_some() {
            settings.load_files(&mut netcfg)?;
            azure = settings.azure()?;
        }
        Ok(Network {
            limits: Limits {
                concurrency: settings.concurrency.value,
                timeout: settings.timeout.value,
            },
            dns_server: settings.dns_server.map(|s| s.value),
            net: netcfg,
            strict: settings.strict.value,
            azure,
        })
    }

    /// What `context` shows: the settings a check would take, each checked by its rule, without
    /// reading the files they name (the command that uses a file reads it, and says so).
    pub fn shown(
        net: &NetArgs,
        file: &ConfigFile,
        node_root: Option<&Path>,
    ) -> Result<BTreeMap<&'static str, Shown>> {
        let (settings, netcfg) = Network::layered(Some(net), file, node_root)?;
        Ok(settings.shown(&netcfg))
    }

    /// Every setting layered; with discovery on (`node_root`), the node users' proxy settings
    /// stand in for an environment without any.
    fn layered(
        net: Option<&NetArgs>,
        file: &ConfigFile,
        node_root: Option<&Path>,
    ) -> Result<(NetSettings, NetConfig)> {
        let settings = NetSettings::resolve(net, file, &env_map())?;
        let mut netcfg = settings.net_config();
        if let Some(root) = node_root {
            users_proxy_settings(&mut netcfg, root);
        }
        Ok((settings, netcfg))
    }
}

/// The address this node sends from towards `to`: a connected UDP socket's own address (the
/// kernel picks the route; no datagram is sent).
fn local_address(to: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let any: std::net::IpAddr = match to {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0)).ok()?;
    socket.connect((to, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// A path setting's rule: the file must exist.
/// `--vnet-prefix`: each a CIDR prefix (at most 1,000: a VNet has far fewer).
fn vnet_prefixes(prefixes: Vec<String>) -> std::result::Result<Vec<String>, String> {
    if prefixes.len() > 1000 {
        return Err(format!(
            "{} prefixes, more than the 1000 a VNet may be given",
            prefixes.len()
        ));
    }
    for p in &prefixes {
        crate::azure::prefix::Range::parse(p)?;
    }
    Ok(prefixes)
}

fn existing(path: PathBuf) -> std::result::Result<PathBuf, String> {
    match path.exists() {
        true => Ok(path),
        false => Err("no such file".into()),
    }
}

/// The proxy a check takes (masked): vnetprobe's own, else the one curl would take for HTTPS
/// from the environment (or the users' shell profile, with discovery).
fn proxy_shown(own: Option<&Setting<String>>, net: &NetConfig) -> Shown {
    if let Some(own) = own {
        return own.shown(|raw| crate::net::proxy::mask(raw));
    }
    match crate::net::proxy::environment_proxy(net, Scheme::Https) {
        Some((var, raw)) => Shown {
            value: Some(crate::net::proxy::mask(raw)),
            origin: match &net.proxy_env_source {
                Some(source) => Origin::Discovery(format!("{source}: {var}")),
                None => Origin::env(var),
            },
        },
        None => Shown::unset(),
    }
}

impl Plan {
    /// The plan of a check.
    pub fn new(select: &SelectArgs, net: Option<&NetArgs>) -> Result<Plan> {
        Plan::with_facts(select, net, false)
    }

    /// The plan of a check whose report records the node's facts from IMDS (`check --output
    /// json`, the input of `merge`), with discovery on.
    pub fn with_facts(
        select: &SelectArgs,
        net: Option<&NetArgs>,
        node_facts: bool,
    ) -> Result<Plan> {
        let (file, context, discovery) = layer_context_for(select, node_facts)?;
        let (targets, selection, digest) = select_targets(select, &file, &context)?;
        let network = Network::resolve(net, &file, discovery.node_root())?;
        Ok(Plan {
            context,
            targets: targets.into_iter().map(Arc::new).collect(),
            selection,
            network,
            catalog_digest: Some(digest),
            trace: None,
        })
    }

    /// The plan of one target named on the command line (`vnetprobe probe`): no catalog is
    /// loaded, neither the embedded one nor the config file's, and nothing is discovered.
    pub fn ad_hoc(target: Target, net: &NetArgs) -> Result<Plan> {
        let select = SelectArgs {
            profiles: vec![],
            set: vec![],
            region: None,
            cloud: None,
            config: None,
            catalogs: vec![],
            only: None,
            no_discover: true,
            imds_endpoint: None,
            node_root: None,
        };
        let (file, context, discovery) = layer_context(&select)?;
        let network = Network::resolve(Some(net), &file, discovery.node_root())?;
        Ok(Plan {
            context,
            targets: vec![Arc::new(target)],
            selection: "the command line".into(),
            network,
            catalog_digest: None,
            trace: None,
        })
    }

    /// A run that would check nothing is not a pass: zero selected targets is a usage error.
    pub fn ensure_selected(self) -> Result<Plan> {
        if self.targets.is_empty() {
            return Err(UsageError(format!(
                "{} select no target: nothing would be checked (`vnetprobe catalog` lists the targets)",
                self.selection
            )));
        }
        Ok(self)
    }

    /// Runs the plan once: a fresh resolver (no cache across runs), all targets, one report.
    pub async fn execute(&self) -> Result<Report> {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut finished = self.run_targets(self.targets.clone(), None).await?;
        self.trace(&mut finished).await;
        Ok(self.report(finished, started, clock.elapsed()))
    }

    /// Traces the paths the plan's trace setting selects, within one more timeout.
    pub async fn trace(&self, finished: &mut [runner::Finished]) {
        if let Some((scope, max_ttl)) = self.trace {
            runner::trace(finished, self.network.limits.timeout, max_ttl, scope).await;
        }
    }

    /// Probes `targets` with a fresh resolver (no cache across runs), telling `observer`.
    pub async fn run_targets(
        &self,
        targets: Vec<Arc<Target>>,
        observer: Option<Arc<dyn runner::Observer>>,
    ) -> Result<Vec<runner::Finished>> {
        let env = ProbeEnv::new(
            DnsCache::new(self.network.dns_server, self.network.limits.timeout)?,
            self.network.limits.timeout,
            self.network.net.clone(),
        );
        let env = Arc::new(env);
        // The run is a task of its own: a probe that ends wakes it as one task wakes another,
        // where waking the caller of `block_on` would write to the runtime's eventfd each time.
        let run = runner::run_observed(targets, env.clone(), self.network.limits, observer);
        let finished = tokio::spawn(run).await.map_err(|e| {
            format!("the run failed inside vnetprobe (a bug, please report it): {e}")
        })?;
        log::debug!(
            "{} targets, {} distinct DNS lookups",
            finished.len(),
            env.dns.lookups()
        );
        Ok(finished)
    }

    /// The report of `finished`, with this plan's context and strictness.
    pub fn report(
        &self,
        finished: Vec<runner::Finished>,
        started: SystemTime,
        took: Duration,
    ) -> Report {
        let mut report = Report::new(
            self.context.values(),
            started,
            took,
            finished,
            self.network.strict,
        );
        report.context_sources = self
            .context
            .sourced()
            .into_iter()
            .map(|(k, v)| (k, v.source.as_str().into()))
            .collect();
        report.catalog_digest = self.catalog_digest.clone();
        if let Some(azure) = &self.network.azure {
            let known: Option<std::net::IpAddr> = self
                .context
                .get("private_ip")
                .and_then(|ip| ip.parse().ok());
            let node = |towards: Option<std::net::IpAddr>| {
                known.or_else(|| towards.and_then(local_address))
            };
            crate::report::azure::annotate(&mut report, azure, &node, self.network.strict);
            if let Some(tags) = &azure.tags {
                let named = report
                    .results
                    .iter()
                    .filter_map(|r| r.service_tag.as_deref());
                // The fix plan's routes name these two whatever failed (see report::fix).
                let routed = ["AzureMachineLearning", "BatchNodeManagement"].into_iter();
                report.tag_features =
                    Some(crate::azure::features::from_file(tags, named.chain(routed)));
            }
        }
        report
    }
}
