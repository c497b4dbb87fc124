//! The listing commands: `catalog` (the selected targets), `context` (the variables and where
//! each came from) and `merge` (reports of many nodes as one).

use super::emit;
use crate::cli::{CatalogArgs, ContextArgs, ListOutput, MergeArgs};
use crate::plan::{Plan, Result, layer_context};
use crate::printable::{self, printable_lines};
use crate::report;

pub fn catalog(args: CatalogArgs) -> Result<u8> {
    let plan = Plan::new(&args.select, None)?.ensure_selected()?;
    let out = match args.output {
        ListOutput::Json => format!(
            "{}\n",
            printable::json(serde_json::to_string_pretty(&plan.targets)?)
        ),
        ListOutput::Table => {
            printable_lines(&report::listing::catalog_table(&plan.targets)).into_owned()
        }
    };
    emit(&out, 0)
}

pub fn context(args: ContextArgs) -> Result<u8> {
    let (_, ctx, _) = layer_context(&args.select)?;
    let sourced = ctx.sourced();
    let out = match args.output {
        ListOutput::Json => format!(
            "{}\n",
            printable::json(serde_json::to_string_pretty(&sourced)?)
        ),
        // Values from IMDS and node files are not ours to trust on a terminal.
        ListOutput::Table => {
            printable_lines(&report::listing::context_table(&sourced)).into_owned()
        }
    };
    emit(&out, 0)
}

pub fn merge(args: MergeArgs) -> Result<u8> {
    let merged = report::merge::merge(&report::merge::load(&args.reports)?);
    let out = match args.output {
        ListOutput::Json => format!(
            "{}\n",
            printable::json(serde_json::to_string_pretty(&merged)?)
        ),
        ListOutput::Table => printable_lines(&report::merge::render_table(&merged)).into_owned(),
    };
    emit(&out, merged.exit_code())
}
