//! A run's plan: the selection (context and targets) and the network settings, validated,
//! and how to run it. Commands build one; `serve` and `--wait` run one again and again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::catalog::{Catalog, Target, auto};
use crate::cli::{NetArgs, SelectArgs};
use crate::context::{ConfigFile, Context, discover};
use crate::net::NetConfig;
use crate::probe::ProbeEnv;
use crate::probe::dns::DnsCache;
use crate::report::Report;
use crate::runner::{self, Limits};
use crate::settings;

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

/// Flags > environment > config file > discovery, for the variables.
/// Also returns the node root when discovery is on: the users' proxy files are read there.
pub fn layer_context(select: &SelectArgs) -> Result<(ConfigFile, Context, Option<PathBuf>)> {
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
    let identity = select.profiles.iter().any(|p| p == "public-ip")
        || file
            .profiles
            .as_ref()
            .is_some_and(|p| p.iter().any(|p| p == "public-ip"));
    discover::discover(&mut ctx, &settings, &discover::process_env(), identity);
    let node_root = settings.enabled.then_some(settings.node_root);
    Ok((file, ctx, node_root))
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
}

/// How probes run: limits, resolver, proxy and trust, strictness.
pub struct Network {
    pub limits: Limits,
    pub dns_server: Option<std::net::SocketAddr>,
    pub net: NetConfig,
    /// `--strict`: unconfirmed passes and required skips fail.
    pub strict: bool,
}

/// The targets of a check: the catalog (embedded, the flags' or the config file's) expanded
/// against the context and selected by profile (asked for, or chosen from the context) and
/// `--only`; with words for the selection.
fn select_targets(
    select: &SelectArgs,
    file: &ConfigFile,
    ctx: &Context,
) -> Result<(Vec<Target>, String)> {
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

    Ok((targets, selection))
}

impl Network {
    /// Flags over the config file over the defaults, each checked by the same rule whatever
    /// its source; with discovery on (`node_root`), the node users' proxy settings stand in for
    /// an environment without any.
    pub fn resolve(
        net: Option<&NetArgs>,
        file: &ConfigFile,
        node_root: Option<&std::path::Path>,
    ) -> Result<Network> {
        let timeout = match net.and_then(|n| n.timeout) {
            Some(t) => t,
            None => match &file.timeout {
                Some(t) => settings::duration(t.get_ref(), &settings::TIMEOUT)
                    .map_err(|e| file.error_at(t, "timeout", &e))?,
                None => DEFAULT_TIMEOUT,
            },
        };
        let concurrency = match net.and_then(|n| n.concurrency) {
            Some(c) => c,
            None => match &file.concurrency {
                Some(c) => settings::count(*c.get_ref(), &settings::CONCURRENCY)
                    .map_err(|e| file.error_at(c, "concurrency", &e))?,
                None => DEFAULT_CONCURRENCY,
            },
        };
        let dns_server = match net.and_then(|n| n.dns_server) {
            Some(server) => Some(server),
            None => match &file.dns_server {
                Some(raw) => Some(
                    crate::address::parse_server(raw.get_ref())
                        .map_err(|e| file.error_at(raw, "dns-server", &e))?,
                ),
                None => None,
            },
        };
        let mut netcfg = NetConfig {
            ca_file: net.and_then(|n| n.ca_file.clone()).or(file.ca_file.clone()),
            public_roots: std::env::var_os("VNETPROBE_PUBLIC_ROOTS").map(PathBuf::from),
            allow_intercept: net.is_some_and(|n| n.allow_intercept)
                || file.allow_intercept.unwrap_or(false),
            proxy: net
                .and_then(|n| n.proxy.clone())
                .or(file.proxy.as_ref().map(|p| p.get_ref().clone())),
            no_proxy: net.is_some_and(|n| n.no_proxy) || file.no_proxy.unwrap_or(false),
            proxy_env: crate::net::proxy::process_env(),
            proxy_env_source: None,
            proxy_files: Default::default(),
            peer_key: None,
        };
        if let Some(root) = node_root {
            users_proxy_settings(&mut netcfg, root);
        }
        if net.is_some_and(|n| n.proxy.is_some()) {
            netcfg.no_proxy = false;
        }
        // Commands that probe: the proxy must parse, and the peer key load.
        if let Some(flags) = net {
            crate::net::proxy::validate(&netcfg).map_err(|e| match (&file.proxy, e.variable) {
                // The proxy came from the config file, not the flag: name the file's line.
                (Some(p), None) if flags.proxy.is_none() => {
                    file.error_at(p, "proxy", &e.why).into()
                }
                _ => UsageError(e.to_string()),
            })?;
            let from_file = file.listen.as_ref().and_then(|l| l.key_file.as_deref());
            netcfg.peer_key = match (flags.key_file.as_deref(), from_file) {
                (Some(path), _) => Some(crate::net::echo::Key::load(path, "--key-file")?),
                (None, Some(path)) => Some(crate::net::echo::Key::load(path, "listen.key-file")?),
                (None, None) => None,
            };
        }
        if let Some(ca) = &netcfg.ca_file
            && !ca.exists()
        {
            return Err(UsageError(format!(
                "--ca-file {}: no such file",
                ca.display()
            )));
        }
        if net.is_some() {
            // Read now so a bad trust file is a usage error naming it, not a failed probe.
            for (path, what) in [
                (&netcfg.ca_file, "--ca-file"),
                (&netcfg.public_roots, "VNETPROBE_PUBLIC_ROOTS"),
            ] {
                if let Some(path) = path {
                    crate::net::tls::read_pem(path, what)?;
                }
            }
            // The system store may be empty or absent, but never a device the TLS library would
            // read without end.
            if let Some(path) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from)
                && path.exists()
            {
                crate::input::read(&path, crate::input::PEM)
                    .map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.display()))?;
            }
        }
        Ok(Network {
            limits: Limits {
                concurrency,
                timeout,
            },
            dns_server,
            net: netcfg,
            strict: net.is_some_and(|n| n.strict) || file.strict.unwrap_or(false),
        })
    }
}

impl Plan {
    /// The plan of a check.
    pub fn new(select: &SelectArgs, net: Option<&NetArgs>) -> Result<Plan> {
        let (file, context, node_root) = layer_context(select)?;
        let (targets, selection) = select_targets(select, &file, &context)?;
        let network = Network::resolve(net, &file, node_root.as_deref())?;
        Ok(Plan {
            context,
            targets: targets.into_iter().map(Arc::new).collect(),
            selection,
            network,
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
        let (file, context, node_root) = layer_context(&select)?;
        let network = Network::resolve(Some(net), &file, node_root.as_deref())?;
        Ok(Plan {
            context,
            targets: vec![Arc::new(target)],
            selection: "the command line".into(),
            network,
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
        let finished = self.run_targets(self.targets.clone(), None).await?;
        Ok(self.report(finished, started, clock.elapsed()))
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
        let finished =
            runner::run_observed(targets, env.clone(), self.network.limits, observer).await;
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
        report
    }
}
