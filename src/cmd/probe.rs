//! `vnetprobe probe PROTOCOL ...`: one ad hoc target from the command line.

use super::{emit, emit_report};
use crate::catalog::{Expect, ProbeSpec, Protocol, adhoc};
use crate::cli::{self, Output, ProbeWhat};
use crate::plan::{Plan, Result, one_shot_runtime};
use crate::report;

pub fn run(args: cli::ProbeArgs) -> Result<u8> {
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
    let plan = Plan::ad_hoc(target, &args.net)?;
    let report = one_shot_runtime()?.block_on(plan.execute())?;
    match args.output {
        Output::Table => emit(
            &report::table::render_probe(
                &report,
                crate::terminal::stdout_colour(),
                crate::terminal::stdout_width(),
            ),
            report.exit_code(),
        ),
        other => emit_report(&report, other, report.exit_code()),
    }
}
