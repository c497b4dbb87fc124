//! The listing commands: `catalog` (the selected targets), `context` (the variables and the
//! run's settings, and where each came from) and `merge` (reports of many nodes as one).

use super::{emit, emit_json};
use crate::catalog::Target;
use crate::cli::{CatalogArgs, ContextArgs, ListOutput, MergeArgs};
use crate::plan::{Network, Plan, Result, layer_context};
use crate::printable::printable_lines;
use crate::report;

pub fn catalog(args: CatalogArgs) -> Result<u8> {
    let plan = Plan::new(&args.select, None)?.ensure_selected()?;
    match args.output {
        ListOutput::Json => {
            let targets: Vec<&Target> = plan.targets.iter().map(|t| &**t).collect();
            emit_json(&targets, 0)
        }
        ListOutput::Table => emit(
            &printable_lines(&report::listing::catalog_table(&plan.targets)),
            0,
        ),
    }
}

pub fn context(args: ContextArgs) -> Result<u8> {
    let (file, ctx, discovery) = layer_context(&args.select)?;
    let mut settings = Network::shown(&args.net, &file, discovery.node_root())?;
    settings.extend(discovery.shown());
    let variables = ctx.sourced();
    // Values from IMDS and node files are not ours to trust on a terminal.
    match (args.output, args.settings) {
        // The contract: an object keyed by variable; the settings have a listing of their own.
        (ListOutput::Json, false) => emit_json(&variables, 0),
        (ListOutput::Json, true) => emit_json(&settings, 0),
        (ListOutput::Table, false) => {
            let text = format!(
                "{}\n{}",
                report::listing::context_table(&variables),
                crate::settings::table(&settings)
            );
            emit(&printable_lines(&text), 0)
        }
        (ListOutput::Table, true) => emit(&printable_lines(&crate::settings::table(&settings)), 0),
    }
}

pub fn merge(args: MergeArgs) -> Result<u8> {
    let merged = report::merge::merge_files(&args.reports)?;
    match args.output {
        ListOutput::Json => emit_json(&merged, merged.exit_code()),
        ListOutput::Table => emit(
            &printable_lines(&report::merge::render_table(
                &merged,
                args.nodes,
                crate::terminal::stdout_width(),
            )),
            merged.exit_code(),
        ),
    }
}
