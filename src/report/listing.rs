//! The tables of the listing commands: the selected targets (`catalog`) and the context's
//! variables with their sources (`context`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::{Host, Target};
use crate::context::Sourced;

pub fn catalog_table(targets: &[Arc<Target>]) -> String {
    let w_id = super::table::column(targets.iter().map(|t| t.id.len()), 2);
    let w_ep = super::table::column(targets.iter().map(|t| t.endpoint().len()), 8);
    let mut s = format!(
        "{:<w_id$}  {:<5}  {:<w_ep$}  {:<8}  {:<9}  PROFILES\n",
        "ID", "PROTO", "ENDPOINT", "REQUIRED", "EXPECT"
    );
    for t in targets {
        let ep = match &t.host {
            Host::Unset { .. } => format!("{} (unset)", t.endpoint()),
            Host::Ready(_) => t.endpoint(),
        };
        s.push_str(&format!(
            "{:<w_id$}  {:<5}  {:<w_ep$}  {:<8}  {:<9}  {}\n",
            t.id,
            t.protocol().as_str(),
            ep,
            if t.required { "yes" } else { "no" },
            t.expect.as_str(),
            t.profiles.join(",")
        ));
    }
    s.push_str(&format!("{} targets\n", targets.len()));
    s
}

pub fn context_table(sourced: &BTreeMap<String, Sourced>) -> String {
    let mut s = format!("{:<24} {:<8} VALUE\n", "VARIABLE", "SOURCE");
    for (k, v) in sourced {
        s.push_str(&format!("{k:<24} {:<8} {}\n", v.source.as_str(), v.value));
    }
    s
}
