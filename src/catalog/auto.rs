//! Which targets run when no profile is asked for (no `--profile`, no `profiles` in the config
//! file): the catalog's default profiles, fitted to what the context says about this node.
//!
//! The rule:
//! - `private-endpoint` (a default) runs only when the context names something a private endpoint
//!   serves: `workspace_id`, `storage_account`, `keyvault` or `acr`. Without them every one of
//!   its names would be skipped.
//! - `exfiltration` is added when `exfil_url` is set: naming the object to request is
//!   asking for the negative check.
//! - The compute-instance names (hosts with `{instance}`) run only on a compute instance, that is
//!   when `instance` is known; elsewhere (a cluster node, a job, a plain VM) they are left out
//!   instead of being skipped.
//! - `peer` is added when `peer` is set: naming a node that runs `vnetprobe listen` is asking
//!   for the paths to it.
//! - `packages`, `vscode` and `public-ip` are never added: the node cannot tell whether jobs
//!   install packages or anyone connects with VS Code, and `public-ip` repeats `no-public-ip`.
//! - If the trimming would leave no profile, the defaults run unchanged (an empty list would mean
//!   every target); a catalog without defaults runs every target, as before.

use super::Target;
use crate::context::Context;

/// Variables naming a resource that sits behind a private endpoint.
const PRIVATE_ENDPOINT_VARIABLES: &[&str] = &["workspace_id", "storage_account", "keyvault", "acr"];

/// The profiles to run, from the catalog's `defaults` and `known` profile names.
pub fn choose_profiles(ctx: &Context, defaults: &[String], known: &[String]) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let has = |var: &str| ctx.get(var).is_some();
    let mut chosen: Vec<String> = defaults
        .iter()
        .filter(|p| {
            p.as_str() != "private-endpoint" || PRIVATE_ENDPOINT_VARIABLES.iter().any(|v| has(v))
        })
        .cloned()
        .collect();
    let exfiltration = "exfiltration".to_string();
    if has("exfil_url") && known.contains(&exfiltration) && !chosen.contains(&exfiltration) {
        chosen.push(exfiltration);
    }
    if has("peer") && known.iter().any(|p| p == "peer") && !chosen.iter().any(|p| p == "peer") {
        chosen.push("peer".to_string());
    }
    if chosen.is_empty() {
        defaults.to_vec()
    } else {
        chosen
    }
}

/// Whether an expanded target belongs to this node when profiles were chosen automatically:
/// not a compute-instance name (one that needs `instance`) on a node without one.
pub fn applies(ctx: &Context, target: &Target) -> bool {
    ctx.get("instance").is_some() || !target.host.missing().iter().any(|v| v == "instance")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ConfigFile, Source};
    use std::collections::BTreeMap;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn ctx(vars: &[(&str, &str)]) -> Context {
        let mut c = Context::build(None, &[], &BTreeMap::new(), &ConfigFile::default()).unwrap();
        for (k, v) in vars {
            c.offer(k, v, Source::Job);
        }
        c
    }

    const DEFAULTS: &[&str] = &["no-public-ip", "internet", "private-endpoint"];
    const KNOWN: &[&str] = crate::catalog::BUILTIN_PROFILES;

    fn choose(vars: &[(&str, &str)]) -> Vec<String> {
        choose_profiles(&ctx(vars), &strings(DEFAULTS), &strings(KNOWN))
    }

    #[test]
    fn private_endpoint_needs_something_behind_one() {
        assert_eq!(
            choose(&[("region", "westeurope")]),
            strings(&["no-public-ip", "internet"])
        );
        assert_eq!(
            choose(&[("instance", "ci1")]),
            strings(&["no-public-ip", "internet"])
        );
        assert_eq!(
            choose(&[("workspace_id", "0f8fad5b-d9cb-469f-a165-70867728950e")]),
            strings(DEFAULTS)
        );
        assert_eq!(choose(&[("keyvault", "kv")]), strings(DEFAULTS));
    }

    #[test]
    fn peer_when_a_peer_is_named() {
        let known = strings(&["no-public-ip", "internet", "peer"]);
        let defaults = strings(&["no-public-ip", "internet"]);
        let with = choose_profiles(&ctx(&[("peer", "10.0.1.5")]), &defaults, &known);
        assert_eq!(with, strings(&["no-public-ip", "internet", "peer"]));
        assert_eq!(choose_profiles(&ctx(&[]), &defaults, &known), defaults);
    }

    #[test]
    fn exfiltration_when_the_other_account_is_named() {
        assert_eq!(
            choose(&[("exfil_url", "x")]),
            strings(&["no-public-ip", "internet", "exfiltration"])
        );
        let without = choose_profiles(
            &ctx(&[("exfil_url", "x")]),
            &strings(DEFAULTS),
            &strings(DEFAULTS),
        );
        assert!(!without.contains(&"exfiltration".to_string()));
    }

    #[test]
    fn opt_in_profiles_stay_out() {
        let all = choose(&[
            ("instance", "ci"),
            ("workspace_id", "w"),
            ("storage_account", "s"),
        ]);
        for p in ["packages", "vscode", "public-ip"] {
            assert!(!all.contains(&p.to_string()), "{p}");
        }
    }

    #[test]
    fn never_widens_to_every_target() {
        let only_pe = strings(&["private-endpoint"]);
        assert_eq!(
            choose_profiles(&ctx(&[]), &only_pe, &strings(KNOWN)),
            only_pe
        );
        assert!(choose_profiles(&ctx(&[("workspace_id", "w")]), &[], &strings(KNOWN)).is_empty());
    }

    /// A DNS target whose host is ready, or (with `missing`) unset for want of those variables.
    fn target(shown: &str, missing: &[&str]) -> Target {
        let mut t = crate::catalog::adhoc::target(
            shown.into(),
            crate::catalog::Check::Dns,
            crate::catalog::Expect::Reachable,
        );
        if !missing.is_empty() {
            t.host = crate::catalog::Host::Unset {
                missing: missing.iter().map(|v| v.to_string()).collect(),
                shown: shown.into(),
            };
        }
        t
    }

    #[test]
    fn instance_names_only_on_a_compute_instance() {
        let unexpanded = target("<instance>.westeurope.instances.azureml.ms", &["instance"]);
        assert!(!applies(&ctx(&[("region", "westeurope")]), &unexpanded));
        assert!(applies(
            &ctx(&[("instance", "ci1")]),
            &target("ci1.westeurope.instances.azureml.ms", &[])
        ));
        assert!(applies(
            &ctx(&[]),
            &target("<region>.tundra.azureml.ms", &["region"])
        ));
    }
}
