//! The application edge: turns a parsed command line into a run and the run into an exit code.
//! Usage, config and catalog errors end here as exit code 2 with a message naming the culprit.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::catalog::{Expect, ProbeSpec, Protocol, Target, adhoc};
use crate::cli::{self, Cli, Command, ListOutput, Output, ProbeWhat, SelectArgs};
pub use crate::plan::{DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, Plan, UsageError};
use crate::plan::{Result, layer_context, one_shot_runtime, runtime};
use crate::printable::{self, printable_lines};
use crate::report::{self, Report};

pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    crate::logging::set_level(cli.log_level);
    crate::logging::set_format(cli.log_format);
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
                log::warn!(
                    "peer checks without --key-file: an echo proves the path but not who answered"
                );
            }
            // Live progress only for people: a terminal on stderr, the table, no --quiet.
            let progress = crate::terminal::stderr_width()
                .filter(|_| args.output == Output::Table && !args.quiet)
                .map(|width| crate::progress::Progress::start(plan.targets.len(), width));
            let report = one_shot_runtime()?.block_on(crate::wait::check(
                &plan,
                args.wait,
                progress.as_ref(),
            ));
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
            let level = crate::logging::level().max(crate::logging::Level::Info);
            crate::logging::set_level(level);
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

fn probe(args: cli::ProbeArgs) -> Result<u8> {
    let spec = ProbeSpec::default();
    let target = match &args.what {
        ProbeWhat::Dns { name, expect } => {
            let expect = match expect {
                cli::DnsExpect::Reachable => Expect::Reachable,
                cli::DnsExpect::Private => Expect::Private,
                cli::DnsExpect::Public => Expect::Public,
            };
            let (host, _) = crate::address::parse_endpoint(&format!("{name}:53"))
                .map_err(|_| format!("{name:?}: not a host name"))?;
            adhoc::target(Protocol::Dns, host, None, expect, spec)
        }
        ProbeWhat::Tcp { endpoint } | ProbeWhat::Udp { endpoint } | ProbeWhat::Tls { endpoint } => {
            let (host, port) = crate::address::parse_endpoint(endpoint)?;
            let protocol = match args.what {
                ProbeWhat::Tcp { .. } => Protocol::Tcp,
                ProbeWhat::Udp { .. } => Protocol::Udp,
                _ => Protocol::Tls,
            };
            adhoc::target(protocol, host, Some(port), Expect::Reachable, spec)
        }
        ProbeWhat::Http { url } | ProbeWhat::Ws { url } => {
            let ws = matches!(args.what, ProbeWhat::Ws { .. });
            let u = crate::address::parse_url(url, ws)?;
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
    let report = one_shot_runtime()?.block_on(plan.execute())?;
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
