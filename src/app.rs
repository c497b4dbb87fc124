//! The application edge: turns a parsed command line into a run and the run into an exit code.
//! Usage, config and catalog errors end here as exit code 2 with a message naming the culprit.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::{CommandFactory, Parser};

use crate::catalog::{Catalog, Expect, ProbeSpec, Protocol, Target, adhoc};
use crate::cli::{self, Cli, Command, ListOutput, NetArgs, Output, ProbeWhat, SelectArgs};
use crate::context::{self, ConfigFile, Context, auto, discover};
use crate::net::NetConfig;
use crate::printable::{self, printable_lines};
use crate::probe::ProbeEnv;
use crate::probe::dns::{self, DnsCache};
use crate::report::{self, Report};
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

type Result<T> = std::result::Result<T, UsageError>;

/// Entry point of the binary.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    crate::log::set_level(cli.log_level);
    crate::log::set_format(cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(msg)) => {
            eprintln!("vnetprobe: error: {}", printable_lines(&msg));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check(args) => {
            let mut plan = Plan::new(&args.select, Some(&args.net))?;
            plan.targets
                .extend(crate::catalog::peer::targets(&args.peers)?);
            let plan = plan.ensure_selected()?;
            if plan.targets.iter().any(|t| t.spec.responder) && plan.net.peer_key.is_none() {
                crate::log::warn(
                    "peer checks without --key-file: an echo proves the path but not who answered",
                );
            }
            // Live progress only for people: a terminal on stderr, the table, no --quiet.
            let progress = crate::terminal::stderr_width()
                .filter(|_| args.output == Output::Table && !args.quiet)
                .map(|width| crate::progress::Progress::start(plan.targets.len(), width));
            let report =
                runtime()?.block_on(crate::wait::check(&plan, args.wait, progress.as_ref()));
            if let Some(p) = progress {
                p.finish();
            }
            let report = report?;
            if !report.checked_anything() {
                // Still show why each target was skipped, then refuse to call it a pass.
                emit(&render(&report, args.output), 2)?;
                return Err(UsageError(format!(
                    "nothing was checked: all {} selected targets were skipped (their reasons name the variable to set)",
                    report.results.len()
                )));
            }
            if let Some(path) = &args.textfile {
                report::textfile::write(path, &report::prometheus::render(&report))
                    .map_err(|e| format!("--textfile {}: {e}", path.display()))?;
            }
            emit(&render(&report, args.output), report.exit_code())
        }
        Command::Probe(args) => probe(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Listen(args) => {
            let level = crate::log::level().max(crate::log::Level::Info);
            crate::log::set_level(level);
            let settings = crate::listen::Settings::resolve(&args)?;
            runtime()?.block_on(crate::listen::run(settings))?;
            Ok(0)
        }
        Command::Catalog(args) => {
            let plan = Plan::new(&args.select, None)?.ensure_selected()?;
            let out = match args.output {
                ListOutput::Json => format!(
                    "{}\n",
                    printable::json(serde_json::to_string_pretty(&plan.targets)?)
                ),
                ListOutput::Table => printable_lines(&catalog_table(&plan.targets)).into_owned(),
            };
            emit(&out, 0)
        }
        Command::Context(args) => {
            let (_, ctx, _) = layer_context(&args.select)?;
            let sourced = ctx.sourced();
            let out = match args.output {
                ListOutput::Json => format!(
                    "{}\n",
                    printable::json(serde_json::to_string_pretty(&sourced)?)
                ),
                ListOutput::Table => {
                    let mut s = format!("{:<24} {:<8} VALUE\n", "VARIABLE", "SOURCE");
                    for (k, v) in &sourced {
                        s.push_str(&format!("{k:<24} {:<8} {}\n", v.source.as_str(), v.value));
                    }
                    // Values from IMDS and node files are not ours to trust on a terminal.
                    printable_lines(&s).into_owned()
                }
            };
            emit(&out, 0)
        }
        Command::Merge(args) => {
            let merged = report::merge::merge(&report::merge::load(&args.reports)?);
            let out = match args.output {
                ListOutput::Json => format!(
                    "{}\n",
                    printable::json(serde_json::to_string_pretty(&merged)?)
                ),
                ListOutput::Table => {
                    printable_lines(&report::merge::render_table(&merged)).into_owned()
                }
            };
            emit(&out, merged.exit_code())
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vnetprobe", &mut buf);
            emit(&String::from_utf8_lossy(&buf), 0)
        }
        Command::Man { page, dir } => match dir {
            Some(dir) => {
                let written = crate::manpage::write_all(&dir)?;
                emit(&format!("{}\n", written.join("\n")), 0)
            }
            None => emit(&crate::manpage::render(page.as_deref())?, 0),
        },
        Command::Explain { kind } => {
            let width = crate::terminal::stdout_width();
            let out = match kind {
                None => crate::explain::render_list(width),
                Some(k) => crate::explain::render(&crate::explain::lookup(&k)?, width),
            };
            emit(&out, 0)
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Writes to stdout; a closed pipe (`vnetprobe check | head`) ends quietly.
fn emit(text: &str, code: u8) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(code),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(UsageError(format!("writing the report: {e}"))),
    }
}

pub fn render(report: &Report, output: Output) -> String {
    match output {
        Output::Table => report::table::render(
            report,
            crate::terminal::stdout_colour(),
            crate::terminal::stdout_width(),
        ),
        Output::Json => report::json::render(report),
        Output::Junit => report::junit::render(report),
        Output::Prometheus => report::prometheus::render(report),
        Output::Fix => report::fix::render(report),
    }
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("VNETPROBE_"))
        .collect()
}

/// Flags > environment > config file > discovery, for the variables.
/// Also returns the node root when discovery is on: the users' proxy files are read there.
fn layer_context(select: &SelectArgs) -> Result<(ConfigFile, Context, Option<PathBuf>)> {
    let file = ConfigFile::load(select.config.as_deref())?;
    let mut vars = Vec::new();
    if let Some(r) = &select.region {
        vars.push(
            context::parse_set(&format!("region={r}"))
                .map_err(|e| e.replace("--set", "--region"))?,
        );
    }
    for raw in &select.set {
        vars.push(context::parse_set(raw)?);
    }
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
        crate::log::info(&format!("proxy variables from {source}"));
        net.proxy_env = vars.clone();
        net.proxy_env_source = Some(source.clone());
    }
    net.proxy_files = files;
}

/// Everything a check needs, validated.
pub struct Plan {
    pub context: Context,
    pub targets: Vec<Target>,
    pub limits: Limits,
    pub dns_server: Option<std::net::SocketAddr>,
    pub net: NetConfig,
    /// `--strict`: unconfirmed passes and required skips fail.
    pub strict: bool,
    /// What selected the targets, for the error when nothing was selected.
    pub selection: String,
}

impl Plan {
    pub fn new(select: &SelectArgs, net: Option<&NetArgs>) -> Result<Plan> {
        let (file, ctx, node_root) = layer_context(select)?;
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
            auto::choose_profiles(&ctx, &catalog.default_profiles(), &catalog.profile_names())
        } else {
            profiles
        };
        let only = select.only.clone().or(file.only.clone());
        let mut targets = catalog.expand(&ctx, &profiles, only.as_deref());
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
            crate::log::info(&format!(
                "profiles chosen from the context: {}",
                profiles.join(", ")
            ));
            targets.retain(|t| auto::applies(&ctx, t));
        }

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
        let dns_server = match net.and_then(|n| n.dns_server.clone()) {
            Some(raw) => Some(dns::parse_server(&raw)?),
            None => match &file.dns_server {
                Some(raw) => Some(dns::parse_server(raw.get_ref()).map_err(|e| {
                    file.error_at(raw, "dns-server", &e.replace("--dns-server ", ""))
                })?),
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
        if let Some(root) = &node_root {
            users_proxy_settings(&mut netcfg, root);
        }
        if net.is_some_and(|n| n.proxy.is_some()) {
            netcfg.no_proxy = false;
        }
        if net.is_some() {
            crate::net::proxy::validate(&netcfg).map_err(|e| {
                match (&file.proxy, e.strip_prefix("--proxy: ")) {
                    (Some(p), Some(why)) if net.is_some_and(|n| n.proxy.is_none()) => {
                        file.error_at(p, "proxy", why).into()
                    }
                    _ => UsageError(e),
                }
            })?;
        }
        if net.is_some() {
            let flag = net.and_then(|n| n.key_file.as_deref());
            let from_file = file.listen.as_ref().and_then(|l| l.key_file.as_deref());
            netcfg.peer_key = match (flag, from_file) {
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
        Ok(Plan {
            context: ctx,
            targets,
            limits: Limits {
                concurrency,
                timeout,
            },
            dns_server,
            net: netcfg,
            strict: net.is_some_and(|n| n.strict) || file.strict.unwrap_or(false),
            selection,
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
        Ok(self.report(&finished, started, clock.elapsed()))
    }

    /// Probes `targets` with a fresh resolver (no cache across runs), telling `observer`.
    pub async fn run_targets(
        &self,
        targets: Vec<Target>,
        observer: Option<Arc<dyn runner::Observer>>,
    ) -> Result<Vec<runner::Finished>> {
        let env = ProbeEnv::new(
            DnsCache::new(self.dns_server, self.limits.timeout)?,
            self.limits.timeout,
            self.net.clone(),
        );
        let env = Arc::new(env);
        let finished = runner::run_observed(targets, env.clone(), self.limits, observer).await;
        crate::log::debug(&format!(
            "{} targets, {} distinct DNS lookups",
            finished.len(),
            env.dns.lookups()
        ));
        Ok(finished)
    }

    /// The report of `finished`, with this plan's context and strictness.
    pub fn report(
        &self,
        finished: &[runner::Finished],
        started: SystemTime,
        took: Duration,
    ) -> Report {
        let mut report = Report::new(self.context.values(), started, took, finished, self.strict);
        report.context_sources = self
            .context
            .sourced()
            .into_iter()
            .map(|(k, v)| (k, v.source.as_str().into()))
            .collect();
        report
    }
}

fn probe(args: cli::ProbeArgs) -> Result<u8> {
    let spec = ProbeSpec::default();
    let target = match &args.what {
        ProbeWhat::Dns { name, expect } => {
            let expect = match expect {
                cli::DnsExpect::Reachable => Expect::Reachable,
                cli::DnsExpect::Private => Expect::Private,
                cli::DnsExpect::Public => Expect::Public,
            };
            let (host, _) = adhoc::parse_endpoint(&format!("{name}:53"))
                .map_err(|_| format!("{name:?}: not a host name"))?;
            adhoc::target(Protocol::Dns, host, None, expect, spec)
        }
        ProbeWhat::Tcp { endpoint } | ProbeWhat::Udp { endpoint } | ProbeWhat::Tls { endpoint } => {
            let (host, port) = adhoc::parse_endpoint(endpoint)?;
            let protocol = match args.what {
                ProbeWhat::Tcp { .. } => Protocol::Tcp,
                ProbeWhat::Udp { .. } => Protocol::Udp,
                _ => Protocol::Tls,
            };
            adhoc::target(protocol, host, Some(port), Expect::Reachable, spec)
        }
        ProbeWhat::Http { url } | ProbeWhat::Ws { url } => {
            let ws = matches!(args.what, ProbeWhat::Ws { .. });
            let u = adhoc::parse_url(url, ws)?;
            let protocol = if ws { Protocol::Ws } else { Protocol::Http };
            adhoc::target(
                protocol,
                u.host,
                Some(u.port),
                Expect::Reachable,
                ProbeSpec {
                    tls: u.tls,
                    path: u.path,
                    ..spec
                },
            )
        }
    };
    let select = SelectArgs {
        profiles: vec![],
        set: vec![],
        region: None,
        cloud: None,
        config: None,
        catalogs: vec![],
        only: None,
        // An ad hoc probe names its target: nothing to discover.
        no_discover: true,
        imds_endpoint: None,
        node_root: None,
    };
    let mut plan = Plan::new(&select, Some(&args.net))?;
    plan.targets = vec![target];
    let report = runtime()?.block_on(plan.execute())?;
    let out = match args.output {
        Output::Table => report::table::render_probe(
            &report,
            crate::terminal::stdout_colour(),
            crate::terminal::stdout_width(),
        ),
        other => render(&report, other),
    };
    emit(&out, report.exit_code())
}

fn catalog_table(targets: &[Target]) -> String {
    let w_id = report::table::column(targets.iter().map(|t| t.id.len()), 2);
    let w_ep = report::table::column(targets.iter().map(|t| t.endpoint().len()), 8);
    let mut s = format!(
        "{:<w_id$}  {:<5}  {:<w_ep$}  {:<8}  {:<9}  PROFILES\n",
        "ID", "PROTO", "ENDPOINT", "REQUIRED", "EXPECT"
    );
    for t in targets {
        let ep = match &t.skip {
            Some(_) => format!("{} (unset)", t.endpoint()),
            None => t.endpoint(),
        };
        s.push_str(&format!(
            "{:<w_id$}  {:<5}  {:<w_ep$}  {:<8}  {:<9}  {}\n",
            t.id,
            t.protocol.as_str(),
            ep,
            if t.required { "yes" } else { "no" },
            t.expect.as_str(),
            t.profiles.join(",")
        ));
    }
    s.push_str(&format!("{} targets\n", targets.len()));
    s
}
