//! `vnetprobe probe PROTOCOL ...`: one ad hoc target from the command line.

use super::{emit, emit_report};
use crate::catalog::{Check, DEFAULT_ACCEPT, Expect, Method, Web, adhoc};
use crate::cli::{self, Output, ProbeWhat};
use crate::plan::{Plan, Result, one_shot_runtime};
use crate::report;

pub fn run(args: cli::ProbeArgs) -> Result<u8> {
    let target = match &args.what {
        ProbeWhat::Dns { name, expect } => {
            let expect = match expect {
                cli::DnsExpect::Reachable => Expect::Reachable,
                cli::DnsExpect::Private => Expect::Private,
                cli::DnsExpect::Public => Expect::Public,
            };
            let (host, _) = crate::address::parse_endpoint(&format!("{name}:53"))
                .map_err(|_| format!("{name:?}: not a host name"))?;
            adhoc::target(host, Check::Dns, expect)
        }
        ProbeWhat::Tcp { endpoint } | ProbeWhat::Udp { endpoint } | ProbeWhat::Tls { endpoint } => {
            let (host, port) = crate::address::parse_endpoint(endpoint)?;
            let check = match args.what {
                ProbeWhat::Tcp { .. } => Check::Tcp {
                    port,
                    responder: false,
                },
                ProbeWhat::Udp { .. } => Check::Udp {
                    port,
                    payload: Vec::new(),
                    responder: false,
                },
                _ => Check::Tls { port },
            };
            adhoc::target(host, check, Expect::Reachable)
        }
        ProbeWhat::Http { url } | ProbeWhat::Ws { url } => {
            let ws = matches!(args.what, ProbeWhat::Ws { .. });
            let u = crate::address::parse_url(url, ws)?;
            let web = Web {
                tls: u.tls,
                path: u.path,
            };
            let check = match ws {
                true => Check::Ws { port: u.port, web },
                false => Check::Http {
                    port: u.port,
                    web,
                    method: Method::Get,
                    accept: DEFAULT_ACCEPT.to_vec(),
                },
            };
            adhoc::target(u.host, check, Expect::Reachable)
        }
        ProbeWhat::Trace {
            protocol, endpoint, ..
        } => {
            let (host, port) = crate::address::parse_endpoint(endpoint)?;
            let check = match protocol {
                cli::TraceProtocol::Tcp => Check::Tcp {
                    port,
                    responder: false,
                },
                cli::TraceProtocol::Udp => Check::Udp {
                    port,
                    payload: Vec::new(),
                    responder: false,
                },
            };
            adhoc::target(host, check, Expect::Reachable)
        }
    };
    let mut plan = Plan::ad_hoc(target, &args.net)?;
    if let ProbeWhat::Trace { max_ttl, .. } = args.what {
        plan.trace = Some((crate::runner::TraceScope::Every, max_ttl));
    }
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
