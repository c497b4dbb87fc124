//! The listing commands: `catalog` (the selected targets), `context` (the variables and the
//! run's settings, and where each came from) and `merge` (reports of many nodes as one).

use std::collections::BTreeMap;

use serde::Serialize;

use super::emit;
use crate::cli::{CatalogArgs, ContextArgs, ListOutput, MergeArgs};
use crate::context::Sourced;
use crate::plan::{Network, Plan, Result, layer_context};
use crate::printable::{self, printable_lines};
use crate::report;
use crate::settings::Shown;

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

/// `vnetprobe context --output json`: the variables by name, and the run's settings.
#[derive(Serialize)]
struct ContextOutput<'a> {
    #[serde(flatten)]
    variables: &'a BTreeMap<String, Sourced>,
    settings: &'a BTreeMap<&'static str, Shown>,
}

pub fn context(args: ContextArgs) -> Result<u8> {
    let (file, ctx, discovery) = layer_context(&args.select)?;
    let network = Network::resolve(Some(&args.net), &file, discovery.node_root())?;
    let mut settings = network.shown;
    settings.extend(discovery.shown());
    let variables = ctx.sourced();
    let out = match args.output {
        ListOutput::Json => {
            let all = ContextOutput {
                variables: &variables,
                settings: &settings,
            };
            format!("{}\n", printable::json(serde_json::to_string_pretty(&all)?))
        }
        // Values from IMDS and node files are not ours to trust on a terminal.
        ListOutput::Table => {
            let text = format!(
                "{}\n{}",
                report::listing::context_table(&variables),
                crate::settings::table(&settings)
            );
            printable_lines(&text).into_owned()
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
