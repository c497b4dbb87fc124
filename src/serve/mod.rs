//! The daemon: a probe loop that runs the catalog every interval (never two runs at once), HTTP
//! endpoints over the latest report, and signals (SIGTERM/SIGINT stop, SIGHUP reloads).

mod exposition;
mod http;
mod process;
pub mod web_config;

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use crate::cli::{self, ServeArgs};
use crate::context::ConfigFile;
use crate::plan::{Plan, UsageError};
use crate::report::{self, Report};
use crate::settings::{self, Layers, Setting, SettingError};
use web_config::WebConfig;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Slack on top of a run and an interval before /healthz calls the probe loop stale.
const STALE_MARGIN: Duration = Duration::from_secs(30);

/// Whose share a connection counts in: its IPv4 address, or the /64 of its IPv6 address (one
/// host's usual allocation, so an attacker cannot pick a new address per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Share(u128);

impl Share {
    fn of(peer: IpAddr) -> Share {
        match peer.to_canonical() {
            IpAddr::V4(v4) => Share(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Share((u128::from(v6) >> 64) | (1 << 127)),
        }
    }
}

/// Where and how often, from flags > config file > defaults.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    /// With its origin: a port that cannot be bound is an error of the flag or the file line.
    listen: Setting<SocketAddr>,
    interval: Duration,
    web_config: Option<PathBuf>,
}

impl Settings {
    fn resolve(args: &ServeArgs) -> Result<Settings, UsageError> {
        let file = ConfigFile::load(args.select.config.as_deref())?;
        let serve = file.serve.as_ref();
        let listen = Layers::new(|raw: String| cli::parse_listen(&raw))
            .checked(settings::flag("--listen", args.listen))
            .given(file.at("serve.listen", serve.and_then(|s| s.listen.as_ref())))
            .or(cli::DEFAULT_LISTEN.parse().expect("a valid default"))?;
        let interval = Layers::new(|raw: String| cli::parse_interval(&raw))
            .checked(settings::flag("--interval", args.interval))
            .given(file.at("serve.interval", serve.and_then(|s| s.interval.as_ref())))
            .or(DEFAULT_INTERVAL)?;
        let web_config = Layers::new(Ok)
            .checked(settings::flag(
                "--web-config-file",
                args.web_config_file.clone(),
            ))
            .checked(file.at(
                "serve.web-config-file",
                serve.and_then(|s| s.web_config_file.as_ref()),
            ))
            .optional()?;
        Ok(Settings {
            listen,
            interval: interval.value,
            web_config: web_config.map(|w| w.value),
        })
    }
}

/// Everything read from files: what a start needs and a SIGHUP replaces, all or nothing.
struct Loaded {
    settings: Settings,
    plan: Plan,
    web: WebConfig,
}

fn load(args: &ServeArgs) -> Result<Loaded, UsageError> {
    let settings = Settings::resolve(args)?;
    let web = match &settings.web_config {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let plan = Plan::new(&args.select, Some(&args.net))?.ensure_selected()?;
    Ok(Loaded {
        settings,
        plan,
        web,
    })
}

/// The rendered output of one run.
struct Snapshot {
    metrics: Bytes,
    results: Bytes,
    /// The status page (`/`).
    page: Bytes,
}

/// What the probe loop, the HTTP side and the signal handler share.
pub(crate) struct State {
    plan: RwLock<Arc<Plan>>,
    interval: RwLock<Duration>,
    web: RwLock<WebConfig>,
    latest: RwLock<Option<Arc<Snapshot>>>,
    /// The body of /metrics (plain and gzip), rebuilt when a run ends or a reload happens: a
    /// scrape renders only the process metrics. The mutex makes rebuilds take turns, so the
    /// last one sees every change.
    metrics: RwLock<Arc<exposition::Exposition>>,
    /// `process_start_time_seconds`.
    start_time: f64,
    rebuild: Mutex<()>,
    runs: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_reload_ok: AtomicBool,
    /// When the probe loop last published a report (or the daemon started): /healthz fails
    /// when this is older than a run and an interval can explain.
    progress: Mutex<Instant>,
    /// Wakes the probe loop for a run now (after a reload).
    wake: Notify,
}

impl State {
    fn new(loaded: Loaded) -> State {
        State {
            plan: RwLock::new(Arc::new(loaded.plan)),
            interval: RwLock::new(loaded.settings.interval),
            web: RwLock::new(loaded.web),
            latest: RwLock::new(None),
            metrics: RwLock::new(Arc::new(exposition::Exposition::new(Bytes::new()))),
            start_time: process::start_time_seconds(),
            rebuild: Mutex::new(()),
            runs: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_reload_ok: AtomicBool::new(true),
            progress: Mutex::new(Instant::now()),
            wake: Notify::new(),
        }
    }

    fn web(&self) -> WebConfig {
        self.web.read().expect("web config lock").clone()
    }

    fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest.read().expect("snapshot lock").clone()
    }

    fn ready(&self) -> bool {
        self.latest().is_some()
    }

    /// The longest a healthy probe loop goes without publishing: a whole run (its own deadline),
    /// the interval with its jitter, and a margin.
    fn stale_after(&self) -> Duration {
        let plan = self.plan.read().expect("plan lock").clone();
        let interval = *self.interval.read().expect("interval lock");
        plan.network.limits.run_deadline(plan.targets.len())
            + interval
            + interval / 10
            + STALE_MARGIN
    }

    /// Ok while the probe loop keeps publishing; otherwise why not (a stuck or dead loop).
    fn health(&self, now: Instant) -> Result<(), String> {
        let last = *self.progress.lock().expect("progress lock");
        let (age, bound) = (now.saturating_duration_since(last), self.stale_after());
        if age <= bound {
            return Ok(());
        }
        let what = match self.ready() {
            true => "the last run finished",
            false => "the daemon started, and no run has finished since,",
        };
        Err(format!(
            "stale: {what} {} s ago, more than the {} s a run and an interval take",
            age.as_secs(),
            bound.as_secs()
        ))
    }

    fn publish(&self, report: &Report) {
        let refresh = self
            .interval
            .read()
            .expect("interval lock")
            .as_secs()
            .max(1);
        let snapshot = Snapshot {
            metrics: Bytes::from(report::prometheus::render(report)),
            results: Bytes::from(report::json::render(report)),
            page: Bytes::from(report::html::render(report, refresh)),
        };
        *self.latest.write().expect("snapshot lock") = Some(Arc::new(snapshot));
        self.runs.fetch_add(1, Ordering::Relaxed);
        *self.progress.lock().expect("progress lock") = Instant::now();
        self.rebuild_metrics();
    }

    fn metrics(&self) -> Arc<exposition::Exposition> {
        self.metrics.read().expect("metrics lock").clone()
    }

    /// The last run's families (rendered once per run) followed by the daemon's own.
    fn rebuild_metrics(&self) {
        let _turn = self.rebuild.lock().expect("rebuild lock");
        let latest = self.latest();
        let registry = Registry::new();
        if latest.is_none() {
            report::prometheus::register_build_info(&registry);
        }
        let runs = IntCounter::new(
            "vnetprobe_runs_total",
            "Probe runs finished since the daemon started.",
        )
        .expect("valid");
        runs.inc_by(self.runs.load(Ordering::Relaxed));
        let reloads = IntCounterVec::new(
            Opts::new(
                "vnetprobe_reloads_total",
                "Reloads asked for by SIGHUP, by result.",
            ),
            &["result"],
        )
        .expect("valid");
        reloads
            .with_label_values(&["success"])
            .inc_by(self.reloads_ok.load(Ordering::Relaxed));
        reloads
            .with_label_values(&["failure"])
            .inc_by(self.reloads_failed.load(Ordering::Relaxed));
        let last_ok = IntGauge::new(
            "vnetprobe_config_last_reload_successful",
            "Whether the last reload succeeded (1), or failed and the previous config is still in use (0).",
        )
        .expect("valid");
        last_ok.set(i64::from(self.last_reload_ok.load(Ordering::Relaxed)));
        for c in [
            Box::new(runs) as Box<dyn prometheus::core::Collector>,
            Box::new(reloads),
            Box::new(last_ok),
        ] {
            registry.register(c).expect("distinct families");
        }
        let own = report::prometheus::encode(&registry);
        let body = match latest {
            Some(s) => [&s.metrics[..], own.as_bytes()].concat(),
            None => own.into_bytes(),
        };
        *self.metrics.write().expect("metrics lock") =
            Arc::new(exposition::Exposition::new(Bytes::from(body)));
    }
}

/// Runs the daemon until SIGTERM or SIGINT; exit code 0 then.
pub fn run(args: ServeArgs) -> Result<u8, UsageError> {
    let loaded = load(&args)?;
    let settings = loaded.settings.clone();
    let runtime = crate::plan::runtime()?;
    let result = runtime.block_on(daemon(args, settings, loaded));
    // Connections still open and a bcrypt check in flight must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn daemon(args: ServeArgs, settings: Settings, loaded: Loaded) -> Result<u8, UsageError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let listen = &settings.listen;
    let listener = tokio::net::TcpListener::bind(listen.value)
        .await
        .map_err(|e| SettingError {
            origin: listen.origin.clone(),
            raw: Some(format!("{:?}", listen.value.to_string())),
            why: e.to_string(),
        })?;
    let local = listener.local_addr()?;
    let scheme = if loaded.web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    if !local.ip().is_loopback() && loaded.web.tls.is_none() && loaded.web.auth.is_none() {
        log::warn!(
            "listening on {local} beyond loopback without TLS or Basic auth: consider --web-config-file"
        );
    }
    let targets = loaded.plan.targets.len();
    let (tls, auth) = (loaded.web.tls.is_some(), loaded.web.auth.is_some());
    let state = Arc::new(State::new(loaded));
    state.rebuild_metrics();
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(http::accept_loop(listener, state.clone(), stop.clone()));
    let mut prober = tokio::spawn(probe_loop(state.clone(), stop.clone()));
    // One line at the default level, as exporters log their start: where, how often, what.
    let interval = humantime::format_duration(settings.interval).to_string();
    let on = |b: bool| if b { "on" } else { "off" };
    crate::logging::notice(
        &format!("listening on {scheme}://{local}; {targets} targets, a run every {interval}"),
        &[
            ("address", &local.to_string()),
            ("interval", &interval),
            ("targets", &targets.to_string()),
            ("web_config", on(settings.web_config.is_some())),
            ("tls", on(tls)),
            ("basic_auth", on(auth)),
            ("version", crate::build_info::VERSION),
        ],
    );
    let code = loop {
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            // A reload may wait on the network (discovery): it must not delay a stop.
            _ = hup.recv() => tokio::select! {
                _ = reload(&state, &args, local) => continue,
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            ended = &mut prober => break loop_ended(ended),
        };
        log::info!("{why}: stopping");
        break 0;
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = server.await;
        if !prober.is_finished() {
            let _ = prober.await;
        }
    })
    .await;
    Ok(code)
}

/// The probe loop only ends when told to stop: ending before means it died (a panic), and
/// serving its last report forever would hide that. Exit code 1, so systemd restarts the daemon.
fn loop_ended(ended: Result<(), tokio::task::JoinError>) -> u8 {
    let why = match ended {
        Ok(()) => "it returned".to_string(),
        Err(e) => match e.try_into_panic() {
            Ok(p) => format!("it {}", crate::runner::panic_message(p.as_ref())),
            Err(e) => e.to_string(),
        },
    };
    log::error!("the probe loop ended ({why}): exiting so the service manager restarts the daemon");
    1
}

/// Re-reads catalog, config and web config; on any error keeps the running ones and says why.
async fn reload(state: &State, args: &ServeArgs, listening: SocketAddr) {
    let args = args.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own: loading may block (files, and discovery that waits on the network).
    std::thread::spawn(move || {
        let _ = tx.send(load(&args));
    });
    let loaded = match rx.await {
        Ok(Ok(loaded)) => loaded,
        failed => {
            let why = match failed {
                Ok(Err(UsageError(why))) => why,
                _ => "loading stopped unexpectedly".to_string(),
            };
            state.reloads_failed.fetch_add(1, Ordering::Relaxed);
            state.last_reload_ok.store(false, Ordering::Relaxed);
            state.rebuild_metrics();
            log::error!("SIGHUP: reload failed, still running the previous config: {why}");
            return;
        }
    };
    if loaded.settings.listen.value != listening {
        log::warn!(
            "SIGHUP: the listen address changed to {}: restart to apply it",
            loaded.settings.listen.value
        );
    }
    let targets = loaded.plan.targets.len();
    *state.plan.write().expect("plan lock") = Arc::new(loaded.plan);
    *state.interval.write().expect("interval lock") = loaded.settings.interval;
    *state.web.write().expect("web config lock") = loaded.web;
    state.reloads_ok.fetch_add(1, Ordering::Relaxed);
    state.last_reload_ok.store(true, Ordering::Relaxed);
    state.rebuild_metrics();
    log::info!("SIGHUP: reloaded, {targets} targets; running them now");
    state.wake.notify_one();
}

/// Runs the plan, publishes the report, waits an interval (with jitter) or a wake-up; one run at
/// a time by construction.
async fn probe_loop(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        let plan = state.plan.read().expect("plan lock").clone();
        let started = Instant::now();
        let result = tokio::select! {
            r = plan.execute() => r,
            _ = stopped(&mut stop) => return,
        };
        match result {
            Ok(report) => {
                let s = &report.summary;
                log::info!(
                    "run finished in {} ms: {} pass, {} fail ({} required), {} skip",
                    report.duration_ms,
                    s.pass,
                    s.fail,
                    s.required_fail,
                    s.skip
                );
                state.publish(&report);
            }
            Err(UsageError(why)) => {
                log::error!("run failed, serving the previous report: {why}")
            }
        }
        let interval = *state.interval.read().expect("interval lock");
        let wait = jittered(interval).saturating_sub(started.elapsed());
        if wait.is_zero() {
            log::warn!(
                "the run took {} ms, longer than the interval: the next one starts now",
                started.elapsed().as_millis()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.wake.notified() => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the daemon is told to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The interval give or take 5% (at most 5 s), so a fleet started together does not probe in
/// lockstep.
fn jittered(interval: Duration) -> Duration {
    let spread = (interval / 10).min(Duration::from_secs(10));
    let fraction = (RandomState::new().hash_one(Instant::now()) % 10_001) as f64 / 10_000.0;
    interval - spread / 2 + spread.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_five_percent() {
        for _ in 0..200 {
            let d = jittered(Duration::from_secs(60));
            assert!(
                d >= Duration::from_secs(57) && d <= Duration::from_secs(63),
                "{d:?}"
            );
        }
        let long = jittered(Duration::from_secs(3600));
        assert!(
            long >= Duration::from_secs(3595) && long <= Duration::from_secs(3605),
            "{long:?}"
        );
    }

    fn args(extra: &[&str]) -> ServeArgs {
        use clap::Parser;
        let mut argv = vec!["vnetprobe", "serve"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn settings_come_from_flags_then_config_then_defaults() {
        let dir =
            std::env::temp_dir().join(format!("vnetprobe-serve-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, "[serve]\nlisten = \"127.0.0.1:1234\"\ninterval = \"30s\"\nweb-config-file = \"w.yml\"\n")
            .unwrap();
        let c = cfg.to_str().unwrap();
        let s = Settings::resolve(&args(&["--config", c])).unwrap();
        assert_eq!(s.listen.value, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.web_config, Some(PathBuf::from("w.yml")));
        let s = Settings::resolve(&args(&[
            "--config",
            c,
            "--listen",
            "[::1]:9",
            "--interval",
            "2m",
        ]))
        .unwrap();
        assert_eq!(s.listen.value, "[::1]:9".parse().unwrap());
        assert_eq!(s.interval, Duration::from_secs(120));

        std::fs::write(&cfg, "[serve]\n\ninterval = \"soon\"\n").unwrap();
        let e = Settings::resolve(&args(&["--config", c])).unwrap_err();
        assert!(
            e.0.contains("config.toml:3: field `serve.interval`"),
            "{}",
            e.0
        );
        std::fs::write(&cfg, "[serve]\nlisten = \":9834\"\n").unwrap();
        let e = Settings::resolve(&args(&["--config", c])).unwrap_err();
        assert!(
            e.0.contains(":2: field `serve.listen`") && e.0.contains("0.0.0.0:9834"),
            "{}",
            e.0
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn healthz_fails_once_the_probe_loop_stops_publishing() {
        let loaded = load(&args(&[
            "--config",
            "/dev/null",
            "--no-discover",
            "--interval",
            "60s",
        ]))
        .unwrap();
        let state = State::new(loaded);
        let start = *state.progress.lock().unwrap();
        let bound = state.stale_after();
        assert!(bound >= Duration::from_secs(60 + 6 + 30), "{bound:?}");
        assert_eq!(state.health(start + bound), Ok(()));
        let e = state
            .health(start + bound + Duration::from_secs(1))
            .unwrap_err();
        assert!(e.contains("no run has finished"), "{e}");

        let report = Report::new(
            Default::default(),
            std::time::SystemTime::now(),
            Duration::ZERO,
            Vec::new(),
            false,
        );
        state.publish(&report);
        let published = *state.progress.lock().unwrap();
        assert!(published >= start);
        assert_eq!(state.health(published + bound), Ok(()));
        let e = state.health(published + bound * 2).unwrap_err();
        assert!(e.starts_with("stale: the last run finished"), "{e}");
    }

    #[tokio::test]
    async fn a_dead_probe_loop_ends_the_daemon_with_exit_code_1() {
        let died = tokio::spawn(async { panic!("probe loop bug") });
        assert_eq!(loop_ended(died.await), 1);
        assert_eq!(loop_ended(tokio::spawn(async {}).await), 1);
    }

    #[test]
    fn defaults_are_loopback_9834_every_minute() {
        let s = Settings::resolve(&args(&["--config", "/dev/null"])).unwrap();
        assert_eq!(
            s,
            Settings {
                listen: Setting {
                    value: "127.0.0.1:9834".parse().unwrap(),
                    origin: crate::settings::Origin::Default,
                },
                interval: DEFAULT_INTERVAL,
                web_config: None
            }
        );
    }
}
