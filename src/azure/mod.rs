//! Azure's own view of the network, read from files an admin exports with `az`: service tags
//! (which tag holds an address, where a tag may be used), the effective security rules and the
//! effective routes, and the evaluation of one flow against them. Files in, verdicts out: no
//! network, no Azure API call.

pub mod features;
pub mod nsg;
pub mod prefix;
pub mod routes;
pub mod service_tags;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use nsg::{Direction, Flow, Remote, Verdict};
pub use prefix::PrefixSet;
pub use routes::{RouteTable, RouteVerdict};
pub use service_tags::ServiceTags;

/// The largest service-tag file read (the real public one is 4 MB).
pub const TAGS_CAP: u64 = 64 << 20;
/// The largest NSG or route file read (an effective list with expanded tags is a few MB).
pub const RULES_CAP: u64 = 16 << 20;

/// The address of Azure's platform (DNS, health probes): the `AzureLoadBalancer` tag in NSG
/// default rules, as the NSG overview documents it.
const AZURE_PLATFORM: &str = "168.63.129.16/32";

/// Everything the files say, loaded once per run.
#[derive(Debug, Clone, Default)]
pub struct AzureData {
    pub tags: Option<ServiceTags>,
    pub tags_file: Option<PathBuf>,
    pub nsgs: Vec<nsg::Nsg>,
    pub nsg_files: Vec<PathBuf>,
    pub routes: Option<RouteTable>,
    pub routes_file: Option<PathBuf>,
    /// The VNet's address space: `--vnet-prefix`, else the routes' `VnetLocal` prefixes, else an
    /// NSG's tagMap.
    pub vnet: PrefixSet,
}

fn read(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    crate::input::read(path, cap).map_err(|e| e.to_string())
}

impl AzureData {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(
        tags: Option<&Path>,
        nsgs: &[PathBuf],
        routes: Option<&Path>,
        vnet: &[String],
    ) -> Result<AzureData, String> {
        // The VNet's prefixes as given win over what the files suggest.
        let mut d = AzureData {
            vnet: PrefixSet::parse(vnet.iter().map(String::as_str))
                .map_err(|e| format!("--vnet-prefix: {e}"))?,
            ..Default::default()
        };
        let given = !d.vnet.is_empty();
        if let Some(p) = tags {
            let bytes =
                read(p, TAGS_CAP).map_err(|e| format!("--service-tags {}: {e}", p.display()))?;
            d.tags = Some(
                ServiceTags::parse(&bytes)
                    .map_err(|e| format!("--service-tags {}: {e}", p.display()))?,
            );
            d.tags_file = Some(p.to_path_buf());
        }
        if let Some(p) = routes {
            let bytes = read(p, RULES_CAP).map_err(|e| format!("--routes {}: {e}", p.display()))?;
            let t = RouteTable::parse(&bytes, &|tag| d.tag_prefixes(tag))
                .map_err(|e| format!("--routes {}: {e}", p.display()))?;
            if !given {
                d.vnet = t.vnet_prefixes();
            }
            d.routes = Some(t);
            d.routes_file = Some(p.to_path_buf());
        }
        for p in nsgs {
            let bytes = read(p, RULES_CAP).map_err(|e| format!("--nsg {}: {e}", p.display()))?;
            let mut list = nsg::parse(&bytes).map_err(|e| format!("--nsg {}: {e}", p.display()))?;
            if d.vnet.is_empty()
                && let Some((_, v)) = list
                    .iter()
                    .flat_map(|n| &n.tag_map)
                    .find(|(t, _)| t.eq_ignore_ascii_case("VirtualNetwork"))
            {
                d.vnet = v.clone();
            }
            d.nsgs.append(&mut list);
            d.nsg_files.push(p.clone());
        }
        Ok(d)
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_none() && self.nsgs.is_empty() && self.routes.is_none()
    }

    /// A service tag's prefixes from the service-tag file.
    fn tag_prefixes(&self, tag: &str) -> Option<PrefixSet> {
        self.tags.as_ref()?.prefixes(tag).cloned()
    }

    /// What a tag in a rule stands for: the default tags NSGs define, then the service tags.
    pub fn resolve(&self, tag: &str) -> Option<PrefixSet> {
        match tag.to_ascii_lowercase().as_str() {
            "virtualnetwork" if !self.vnet.is_empty() => Some(self.vnet.clone()),
            "virtualnetwork" => None,
            "azureloadbalancer" => PrefixSet::parse([AZURE_PLATFORM]).ok(),
            // The address space outside the VNet reachable by the public internet.
            "internet" => Some(
                prefix::everything()
                    .minus(&prefix::private())
                    .minus(&self.vnet),
            ),
            _ => self.tag_prefixes(tag),
        }
    }

    /// The NSGs' verdict on one flow; None without NSG files.
    pub fn rules(&self, flow: &Flow) -> Option<Verdict> {
        nsg::evaluate(&self.nsgs, flow, &|t| self.resolve(t))
    }

    /// The route an address takes; None without a route file or when the file cannot say.
    pub fn route(&self, ip: IpAddr) -> Option<RouteVerdict> {
        self.routes.as_ref()?.lookup(ip)
    }

    /// The tags holding an address; empty without a service-tag file.
    pub fn tags_of(&self, ip: IpAddr) -> Vec<String> {
        self.tags
            .as_ref()
            .map(|t| t.tags_of(ip).into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The inputs, for the report's context.
    pub fn inputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let (Some(f), Some(t)) = (&self.tags_file, &self.tags) {
            out.push(("service_tags_file".into(), f.display().to_string()));
            out.push((
                "service_tags_change_number".into(),
                t.change_number().to_string(),
            ));
        }
        if !self.nsg_files.is_empty() {
            let files: Vec<String> = self
                .nsg_files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            out.push(("nsg_files".into(), files.join(",")));
        }
        if let Some(f) = &self.routes_file {
            out.push(("routes_file".into(), f.display().to_string()));
        }
        if !self.vnet.is_empty() && !self.nsgs.is_empty() {
            out.push(("vnet_prefixes".into(), self.vnet.cidrs().join(",")));
        }
        out
    }
}

#[cfg(test)]
mod tests;
