//! Expanding a catalog against a context: the targets of one run, one per port, with hosts
//! filled in (or unset, naming every missing variable).

use super::*;
use crate::context::Context;

impl Catalog {
    /// The targets of one run: selected by profile and id glob, for the context's cloud,
    /// one per port, each host ready or unset with the variables it needs.
    pub fn expand(&self, ctx: &Context, profiles: &[String], only: Option<&str>) -> Vec<Target> {
        let vars = ctx.template_vars();
        let private_endpoints = ctx.private_endpoints();
        let cloud = ctx.cloud();
        let mut out = Vec::new();
        for t in &self.targets {
            if !t.clouds.contains(&cloud) {
                continue;
            }
            if !profiles.is_empty() && !t.profiles.iter().any(|p| profiles.contains(p)) {
                continue;
            }
            if let Some(glob) = only
                && !glob_match(glob, &t.id)
            {
                continue;
            }
            let path = t.check.path();
            let (host, path) = match (t.host.expand(&vars), path.map(|p| p.expand(&vars))) {
                (Ok(host), None) => (Host::Ready(host), String::new()),
                (Ok(host), Some(Ok(path))) => (Host::Ready(host), path),
                _ => {
                    let mut missing = t.host.missing(&vars);
                    for v in path.map(|p| p.missing(&vars)).unwrap_or_default() {
                        if !missing.contains(&v) {
                            missing.push(v);
                        }
                    }
                    let shown = t.host.expand_partial(&vars);
                    let path = path.map(|p| p.expand_partial(&vars)).unwrap_or_default();
                    (Host::Unset { missing, shown }, path)
                }
            };
            // A DNS target has no port: one target, whose check takes none.
            let ports: &[u16] = if t.ports.is_empty() { &[0] } else { &t.ports };
            for &port in ports {
                out.push(Target {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    host: host.clone(),
                    check: t.check.at(port, &path),
                    profiles: t.profiles.clone(),
                    service_tag: t
                        .service_tag
                        .as_ref()
                        .map(|(raw, tpl)| tpl.expand(&vars).unwrap_or_else(|_| raw.clone())),
                    required: t.required.contains(&cloud)
                        && t.required_with_private_endpoint
                            .as_ref()
                            .is_none_or(|s| private_endpoints.contains(s)),
                    expect: match &t.private_endpoint {
                        Some(service) if !private_endpoints.contains(service) => Expect::Reachable,
                        _ => t.expect,
                    },
                    why: t.why.clone(),
                    fix: match t.direction {
                        Direction::Inbound => fill_placeholders(&t.fix, ctx),
                        Direction::Outbound => t.fix.clone(),
                    },
                    section: t.section.clone(),
                    direction: t.direction,
                    client: t.client,
                    timeout: t.timeout,
                });
            }
        }
        out
    }
}

/// Fills the `<PLACEHOLDERS>` of an inbound row's command with what the context knows (from
/// IMDS, flags or discovery); the others stay for the admin to fill.
fn fill_placeholders(fix: &str, ctx: &Context) -> String {
    let mut out = fix.to_string();
    for (placeholder, var) in [
        ("<SUBSCRIPTION_ID>", "subscription"),
        ("<RESOURCE_GROUP>", "resource_group"),
        ("<VM_NAME>", "vm_name"),
        ("<NODE_IP>", "private_ip"),
        ("<REGION>", "region"),
    ] {
        if let Some(value) = ctx.get(var) {
            out = out.replace(placeholder, value);
        }
    }
    out
}
