//! `vnetprobe check`: the selected targets, once (or until they pass, with `--wait`), a report
//! on stdout and the exit code that provisioning scripts read.

use super::emit_report;
use crate::cli::{CheckArgs, Output};
use crate::plan::{Plan, Result, UsageError, one_shot_runtime};
use crate::report;

pub fn run(args: CheckArgs) -> Result<u8> {
    // Before any probe: a destination the writer would refuse (or a device it would replace).
    if let Some(path) = &args.textfile {
        report::textfile::check_destination(path)
            .map_err(|e| UsageError(format!("--textfile {}: {e}", path.display())))?;
    }
    // A JSON report may be merged with a fleet's: it records the node's facts from IMDS.
    let mut plan = Plan::with_facts(&args.select, Some(&args.net), args.output == Output::Json)?;
    let peers = crate::catalog::peer::targets(&args.peers)?;
    plan.targets
        .extend(peers.into_iter().map(std::sync::Arc::new));
    if args.trace {
        plan.trace = Some((
            crate::runner::TraceScope::Failures,
            crate::net::trace::DEFAULT_MAX_TTL,
        ));
    }
    let plan = plan.ensure_selected()?;
    if plan.targets.iter().any(|t| t.check.responder()) && plan.network.net.peer_key.is_none() {
        log::warn!("peer checks without --key-file: an echo proves the path but not who answered");
    }
    // Live progress only for people: a terminal on stderr, the table, no --quiet.
    let progress = crate::terminal::stderr_width()
        .filter(|_| args.output == Output::Table && !args.quiet)
        .map(|width| crate::progress::Progress::start(plan.targets.len(), width));
    let report =
        one_shot_runtime()?.block_on(crate::wait::check(&plan, args.wait, progress.as_ref()));
    if let Some(p) = progress {
        p.finish();
    }
    let report = report?;
    if !report.checked_anything() {
        // Still show why each target was skipped, then refuse to call it a pass.
        emit_report(&report, args.output, 2)?;
        return Err(UsageError(format!(
            "nothing was checked: all {} selected targets were skipped (their reasons name the variable to set)",
            report.results.len()
        )));
    }
    if let Some(path) = &args.textfile {
        report::textfile::write(path, &report::prometheus::render(&report))
            .map_err(|e| format!("--textfile {}: {e}", path.display()))?;
    }
    emit_report(&report, args.output, report.exit_code())
}
