//! The tables of the listing commands: the selected targets (`catalog`) and the context's
//! variables with their sources (`context`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::{Host, Target};
use crate::context::Sourced;

pub fn catalog_table(targets: &[Arc<Target>]) -> String {
    let endpoints: Vec<String> = targets
        .iter()
        .map(|t| match &t.host {
            Host::Unset { .. } => format!("{} (unset)", t.endpoint()),
            Host::Ready(_) => t.endpoint(),
        })
        .collect();
    let w_id = super::table::column(targets.iter().map(|t| t.id.len()), 2);
    let w_ep = super::table::column(endpoints.iter().map(String::len), 8);
    let mut s = format!(
        "{:<w_id$}  {:<5}  {:<w_ep$}  {:<8}  {:<9}  PROFILES\n",
        "ID", "PROTO", "ENDPOINT", "REQUIRED", "EXPECT"
    );
    for (t, ep) in targets.iter().zip(&endpoints) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Check, Expect, adhoc};

    /// An unset host is marked, and the columns after it stay aligned.
    #[test]
    fn catalog_columns_line_up_with_unset_hosts() {
        let ready = adhoc::target("a.example".into(), Check::Dns, Expect::Reachable);
        let mut unset = ready.clone();
        unset.host = Host::Unset {
            missing: vec!["workspace_id".into()],
            shown: "<workspace_id>.workspace.westeurope.api.azureml.ms".into(),
        };
        let table = catalog_table(&[Arc::new(ready), Arc::new(unset)]);
        let lines: Vec<&str> = table.lines().take(3).collect();
        assert!(lines[2].contains("azureml.ms (unset)"), "{table}");
        let at = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(at(lines[0], "REQUIRED"), at(lines[1], "yes"), "{table}");
        assert_eq!(at(lines[0], "REQUIRED"), at(lines[2], "yes"), "{table}");
    }
}
