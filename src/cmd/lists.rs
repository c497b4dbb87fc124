//! The listing commands: `catalog` (the selected targets), `context` (the variables and where
//! each came from) and `merge` (reports of many nodes as one).

use super::{emit, emit_json};
use crate::catalog::Target;
use crate::cli::{CatalogArgs, ContextArgs, ListOutput, MergeArgs};
use crate::plan::{Plan, Result, layer_context};
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
    let (_, ctx, _) = layer_context(&args.select)?;
    let sourced = ctx.sourced();
    match args.output {
        ListOutput::Json => emit_json(&sourced, 0),
        // Values from IMDS and node files are not ours to trust on a terminal.
        ListOutput::Table => emit(
            &printable_lines(&report::listing::context_table(&sourced)),
            0,
        ),
    }
}

pub fn merge(args: MergeArgs) -> Result<u8> {
    let merged = report::merge::merge(&report::merge::load(&args.reports)?);
    match args.output {
        ListOutput::Json => emit_json(&merged, merged.exit_code()),
        ListOutput::Table => emit(
            &printable_lines(&report::merge::render_table(&merged)),
            merged.exit_code(),
        ),
    }
}
