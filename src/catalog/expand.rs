//! Expanding a catalog against a context: the targets of one run, one per port, with hosts
//! filled in (or skipped, naming the missing variable).

use super::*;
use crate::context::Context;

impl Catalog {
    /// The targets of one run: selected by profile and id glob, for the context's cloud,
    /// one per port, with hosts expanded (or a skip reason naming the missing variable's flag).
    pub fn expand(&self, ctx: &Context, profiles: &[String], only: Option<&str>) -> Vec<Target> {
        let vars = ctx.template_vars();
        let private_endpoints = ctx.private_endpoints();
        let mut out = Vec::new();
        for t in &self.targets {
            if !t.clouds.contains(&ctx.cloud()) {
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
            let expanded = t
                .host
                .expand(&vars)
                .and_then(|h| Ok((h, t.path.expand(&vars)?)));
            let (host, spec, skip) = match expanded {
                Ok((host, path)) => (
                    host,
                    ProbeSpec {
                        path,
                        ..t.spec.clone()
                    },
                    None,
                ),
                Err(var) => (
                    t.host.expand_partial(&vars),
                    t.spec.clone(),
                    Some(crate::context::missing_variable_hint(&var)),
                ),
            };
            let ports: Vec<Option<u16>> = if t.ports.is_empty() {
                vec![None]
            } else {
                t.ports.iter().copied().map(Some).collect()
            };
            for port in ports {
                out.push(Target {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    protocol: t.protocol,
                    host: host.clone(),
                    port,
                    profiles: t.profiles.clone(),
                    service_tag: t
                        .service_tag
                        .as_ref()
                        .map(|(raw, tpl)| tpl.expand(&vars).unwrap_or_else(|_| raw.clone())),
                    required: t.required.contains(&ctx.cloud()),
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
                    spec: spec.clone(),
                    skip: skip.clone(),
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
