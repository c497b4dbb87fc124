//! Where the variables of a run come from: flags > `VNETPROBE_*` environment > config file >
//! discovery, each value remembered with its source.

pub mod config;
pub mod discover;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::settings::{self, Layers, Origin, Setting, SettingError};

pub mod template;
pub use config::ConfigFile;

crate::outcome::labelled! {
    /// The Azure cloud: it decides the domain suffixes.
    #[derive(Default, clap::ValueEnum)]
    pub enum Cloud {
        #[default]
        Public => "public",
        Usgov => "usgov",
        China => "china",
    }
}

impl Cloud {
    pub fn parse(s: &str) -> Option<Cloud> {
        match s.to_ascii_lowercase().as_str() {
            "public" | "azurecloud" | "azurepubliccloud" => Some(Cloud::Public),
            "usgov" | "azureusgovernment" | "azureusgovernmentcloud" => Some(Cloud::Usgov),
            "china" | "azurechinacloud" => Some(Cloud::China),
            _ => None,
        }
    }

    /// The per-cloud template variables.
    pub fn suffixes(self) -> [(&'static str, &'static str); 11] {
        match self {
            Cloud::Public => [
                ("aml_domain", "azureml.ms"),
                ("api_domain", "api.azureml.ms"),
                ("storage_suffix", "core.windows.net"),
                ("login_host", "login.microsoftonline.com"),
                ("arm_host", "management.azure.com"),
                ("batch_suffix", "batch.azure.com"),
                ("notebooks_domain", "notebooks.azure.net"),
                ("vault_domain", "vault.azure.net"),
                ("acr_domain", "azurecr.io"),
                ("studio_host", "ml.azure.com"),
                ("graph_host", "graph.microsoft.com"),
            ],
            Cloud::Usgov => [
                ("aml_domain", "azureml.us"),
                ("api_domain", "api.ml.azure.us"),
                ("storage_suffix", "core.usgovcloudapi.net"),
                ("login_host", "login.microsoftonline.us"),
                ("arm_host", "management.usgovcloudapi.net"),
                ("batch_suffix", "batch.usgovcloudapi.net"),
                ("notebooks_domain", "notebooks.usgovcloudapi.net"),
                ("vault_domain", "vault.usgovcloudapi.net"),
                ("acr_domain", "azurecr.us"),
                ("studio_host", "ml.azure.us"),
                ("graph_host", "graph.microsoft.us"),
            ],
            Cloud::China => [
                ("aml_domain", "azureml.cn"),
                ("api_domain", "api.ml.azure.cn"),
                ("storage_suffix", "core.chinacloudapi.cn"),
                ("login_host", "login.chinacloudapi.cn"),
                ("arm_host", "management.chinacloudapi.cn"),
                ("batch_suffix", "batch.chinacloudapi.cn"),
                ("notebooks_domain", "notebooks.chinacloudapi.cn"),
                ("vault_domain", "vault.azure.cn"),
                ("acr_domain", "azurecr.cn"),
                ("studio_host", "studio.ml.azure.cn"),
                ("graph_host", "microsoftgraph.chinacloudapi.cn"),
            ],
        }
    }
}

crate::outcome::labelled! {
    /// Where a value came from.
    pub enum Source {
        Flag => "flag",
        Env => "env",
        File => "file",
        Imds => "imds",
        Nbvm => "nbvm",
        Mlflow => "mlflow",
        Job => "job",
        /// `CI_*` variables of a compute instance.
        Ci => "ci",
        /// `AZ_BATCH_*` variables of the Batch node under Azure ML compute.
        Batch => "batch",
        Default => "default",
        Derived => "derived",
    }
}

/// A value and its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced {
    pub value: String,
    pub source: Source,
}

/// A variable set by a flag, the environment or the config file; discovery offers its own
/// sources with `Context::offer`.
impl From<Setting<String>> for Sourced {
    fn from(set: Setting<String>) -> Sourced {
        let source = match set.origin {
            Origin::Flag(_) => Source::Flag,
            Origin::Env(_) => Source::Env,
            Origin::File { .. } => Source::File,
            Origin::Discovery(_) => Source::Derived,
            Origin::Default => Source::Default,
        };
        Sourced {
            value: set.value,
            source,
        }
    }
}

/// The variables of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    cloud: Option<Sourced>,
    vars: BTreeMap<String, Sourced>,
}

pub fn unknown_variable_message(key: &str) -> String {
    format!(
        "unknown variable {key:?} (known: {})",
        template::DEPLOYMENT_VARIABLES.join(", ")
    )
}

/// The skip reason for a target whose template needs `var`: names the flag that sets it (in
/// words, never as the raw `{template}`).
pub fn missing_variable_hint(var: &str) -> String {
    match var {
        "region" => "needs region: set --region R (or VNETPROBE_REGION)".to_string(),
        "notebook_label" => {
            "needs workspace_name, region and workspace_id: set --set workspace_name=..., --region and --set workspace_id=...".to_string()
        }
        "exfil_host" | "exfil_path" => {
            "needs exfil_url: set --set exfil_url=https://OTHERACCOUNT.blob.core.windows.net/CONTAINER/BLOB \
             (a publicly readable blob in a storage account outside the workspace) to enable this check"
                .to_string()
        }
        "batch_account" => {
            "needs batch_account: set --set batch_account=ACCOUNT.REGION.batch.azure.com (or \
             VNETPROBE_BATCH_ACCOUNT); cluster nodes have it in AZ_BATCH_ACCOUNT_URL"
                .to_string()
        }
        v if template::DEPLOYMENT_VARIABLES.contains(&v) => {
            format!("needs {v}: set --set {v}=VALUE (or VNETPROBE_{})", v.to_ascii_uppercase())
        }
        v => format!("needs {v}"),
    }
}

/// Checks a variable set by a flag, the environment or the config file: a known name and a
/// well-formed value (the same rule discovery applies). Returns the normalised value.
pub fn check_setting(key: &str, value: &str) -> Result<String, String> {
    if !template::DEPLOYMENT_VARIABLES.contains(&key) && key != "other_storage_account" {
        return Err(unknown_variable_message(key));
    }
    if value.trim().is_empty() {
        return Err("the value must be non-empty".into());
    }
    values::check(key, value)
}

/// Parses one `--set KEY=VALUE`; the error names the flag.
pub fn parse_set(raw: &str) -> Result<(String, String), String> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?}: expected KEY=VALUE"))?;
    let k = k.trim();
    let v = check_setting(k, v).map_err(|e| format!("{raw:?}: {e}"))?;
    Ok((k.to_string(), v))
}

impl Context {
    /// Layers values: flags over environment over file, each checked by its one rule. Later
    /// layers (discovery) add with `offer`.
    pub fn build(
        flag_cloud: Option<Cloud>,
        flag_vars: &[(String, String)],
        env: &BTreeMap<String, String>,
        file: &ConfigFile,
    ) -> Result<Context, SettingError> {
        let mut ctx = Context::default();
        // Unknown names in the file are refused by the rule, so every name given is layered.
        let names: BTreeSet<&str> = template::DEPLOYMENT_VARIABLES
            .iter()
            .copied()
            .chain(["other_storage_account"])
            .chain(file.set.keys().map(String::as_str))
            .collect();
        for var in names {
            let flag = flag_vars.iter().rev().find(|(k, _)| k == var);
            let env_key = format!("VNETPROBE_{}", var.to_ascii_uppercase());
            let from_file = file.at(&format!("set.{var}"), file.set.get(var));
            let set = Layers::new(|raw: String| check_setting(var, &raw))
                .checked(settings::flag("--set", flag.map(|(_, v)| v.clone())))
                .given(settings::env(env, &env_key))
                .given(from_file)
                .optional()?;
            if let Some(set) = set {
                ctx.vars.insert(var.to_string(), Sourced::from(set));
            }
        }
        let cloud = Layers::new(|raw: String| {
            Cloud::parse(&raw).ok_or_else(|| "use public, usgov or china".to_string())
        })
        .checked(settings::flag("--cloud", flag_cloud))
        .given(settings::env(env, "VNETPROBE_CLOUD"))
        .checked(file.at("cloud", file.cloud.as_ref()))
        .optional()?;
        ctx.cloud = cloud.map(|c| Sourced::from(c.map(|c| c.as_str().to_string())));
        Ok(ctx)
    }

    /// Sets `var` unless a source of higher precedence already did.
    pub fn offer(&mut self, var: &str, value: &str, source: Source) {
        self.vars.entry(var.to_string()).or_insert_with(|| Sourced {
            value: value.to_string(),
            source,
        });
    }

    /// Sets the cloud unless a higher source already did.
    pub fn offer_cloud(&mut self, cloud: Cloud, source: Source) {
        if self.cloud.is_none() {
            self.cloud = Some(Sourced {
                value: cloud.as_str().into(),
                source,
            });
        }
    }

    /// Whether some source set the cloud (otherwise it is the default, public).
    pub fn has_cloud(&self) -> bool {
        self.cloud.is_some()
    }

    pub fn cloud(&self) -> Cloud {
        self.cloud
            .as_ref()
            .and_then(|c| Cloud::parse(&c.value))
            .unwrap_or_default()
    }

    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(|s| s.value.as_str())
    }

    /// Every variable with its source, the cloud and derived values included.
    pub fn sourced(&self) -> BTreeMap<String, Sourced> {
        let mut out = self.vars.clone();
        out.insert(
            "cloud".into(),
            self.cloud.clone().unwrap_or(Sourced {
                value: Cloud::Public.as_str().into(),
                source: Source::Default,
            }),
        );
        if let Some(label) = self.notebook_label() {
            out.insert(
                "notebook_label".into(),
                Sourced {
                    value: label,
                    source: Source::Derived,
                },
            );
        }
        out.entry("private_endpoints".into()).or_insert(Sourced {
            value: values::DEFAULT_PRIVATE_ENDPOINTS.into(),
            source: Source::Default,
        });
        out
    }

    /// The services the deployment puts behind private endpoints (`private_endpoints`, or its
    /// default): their names must resolve privately.
    pub fn private_endpoints(&self) -> Vec<String> {
        let raw = self
            .get("private_endpoints")
            .unwrap_or(values::DEFAULT_PRIVATE_ENDPOINTS);
        values::private_endpoints(raw).unwrap_or_default()
    }

    /// Values only, for the JSON report.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.sourced()
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect()
    }

    fn notebook_label(&self) -> Option<String> {
        Some(template::notebook_label(
            self.get("workspace_name")?,
            self.get("region")?,
            self.get("workspace_id")?,
        ))
    }

    /// What templates expand against: deployment variables, cloud suffixes, derived labels.
    pub fn template_vars(&self) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.value.to_ascii_lowercase()))
            .collect();
        for (k, v) in self.cloud().suffixes() {
            vars.insert(k.to_string(), v.to_string());
        }
        if let Some(label) = self.notebook_label() {
            vars.insert("notebook_label".into(), label);
        }
        // Checked when set; a blob path keeps its case.
        if let Some((host, path)) = self
            .get("exfil_url")
            .and_then(|u| values::exfil_url(u).ok())
        {
            vars.insert("exfil_host".into(), host);
            vars.insert("exfil_path".into(), path);
        }
        vars.insert(
            "node".into(),
            node_name().unwrap_or_else(|| "localhost".into()),
        );
        vars
    }
}

/// This machine's host name: the report's `node`, and the `{node}` of inbound rows (which are
/// about traffic to it).
pub fn node_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A variable map for tests (also used by the submodules' tests).
    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = ConfigFile::parse(
            Path::new("c.toml"),
            "cloud = \"china\"\n[set]\nregion = \"fileregion\"\ninstance = \"filevm\"\nacr = \"fileacr\"\n",
        )
        .unwrap();
        let e = env(&[
            ("VNETPROBE_REGION", "envregion"),
            ("VNETPROBE_INSTANCE", "envvm"),
            ("VNETPROBE_CLOUD", "usgov"),
        ]);
        let ctx =
            Context::build(None, &[("region".into(), "flagregion".into())], &e, &file).unwrap();
        let s = ctx.sourced();
        assert_eq!(
            (s["region"].value.as_str(), s["region"].source),
            ("flagregion", Source::Flag)
        );
        assert_eq!(
            (s["instance"].value.as_str(), s["instance"].source),
            ("envvm", Source::Env)
        );
        assert_eq!(
            (s["acr"].value.as_str(), s["acr"].source),
            ("fileacr", Source::File)
        );
        assert_eq!(ctx.cloud(), Cloud::Usgov);
        assert_eq!(s["cloud"].source, Source::Env);
    }

    #[test]
    fn discovery_never_overrides() {
        let mut ctx = Context::build(
            None,
            &[("region".into(), "a".into())],
            &env(&[]),
            &ConfigFile::default(),
        )
        .unwrap();
        ctx.offer("region", "b", Source::Imds);
        ctx.offer("instance", "ci", Source::Nbvm);
        assert_eq!(ctx.get("region"), Some("a"));
        assert_eq!(ctx.sourced()["instance"].source, Source::Nbvm);
    }

    #[test]
    fn cloud_switches_suffixes() {
        let ctx =
            Context::build(Some(Cloud::China), &[], &env(&[]), &ConfigFile::default()).unwrap();
        assert_eq!(
            ctx.template_vars()["storage_suffix"],
            "core.chinacloudapi.cn"
        );
        assert_eq!(ctx.template_vars()["aml_domain"], "azureml.cn");
    }

    #[test]
    fn set_parsing_names_the_flag() {
        assert_eq!(
            parse_set("region=westeurope").unwrap(),
            ("region".into(), "westeurope".into())
        );
        assert!(parse_set("region").unwrap_err().contains("KEY=VALUE"));
        assert!(
            parse_set("regoin=x")
                .unwrap_err()
                .contains("unknown variable \"regoin\"")
        );
        assert!(parse_set("region=").unwrap_err().contains("non-empty"));
    }

    #[test]
    fn environment_values_are_checked_like_flags() {
        let build =
            |k: &str, v: &str| Context::build(None, &[], &env(&[(k, v)]), &ConfigFile::default());
        let err = build("VNETPROBE_REGION", "West Europe")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("VNETPROBE_REGION=\"West Europe\"") && err.contains("\"westeurope\""),
            "{err}"
        );
        let flag = parse_set("region=West-Europe").unwrap_err();
        assert!(flag.contains("\"westeurope\""), "{flag}");
        assert!(build("VNETPROBE_STORAGE_ACCOUNT", "sa1.blob.core.windows.net").is_err());
        assert!(
            build("VNETPROBE_OTHER_STORAGE_ACCOUNT", "sa2")
                .unwrap_err()
                .to_string()
                .contains("exfil_url")
        );
        let ok = build("VNETPROBE_REGION", "WestEurope").unwrap();
        assert_eq!(ok.get("region"), Some("westeurope"));
    }

    #[test]
    fn private_endpoints_default_to_the_documents_list() {
        let ctx = Context::build(None, &[], &env(&[]), &ConfigFile::default()).unwrap();
        assert_eq!(ctx.private_endpoints(), ["workspace", "keyvault", "acr"]);
        assert_eq!(ctx.sourced()["private_endpoints"].source, Source::Default);
        let set = parse_set("private_endpoints=blob,workspace").unwrap();
        let ctx = Context::build(None, &[set], &env(&[]), &ConfigFile::default()).unwrap();
        assert_eq!(ctx.private_endpoints(), ["blob", "workspace"]);
    }

    #[test]
    fn bad_cloud_env_is_an_error() {
        assert!(
            Context::build(
                None,
                &[],
                &env(&[("VNETPROBE_CLOUD", "mars")]),
                &ConfigFile::default()
            )
            .is_err()
        );
    }

    /// The error of a context built from this config file (`v.toml`).
    fn file_error(text: &str) -> String {
        let file = ConfigFile::parse(Path::new("v.toml"), text).unwrap();
        let ctx = Context::build(None, &[], &env(&[]), &file);
        ctx.unwrap_err().to_string()
    }

    #[test]
    fn a_bad_variable_in_the_file_names_line_and_field_like_a_flag_would() {
        let err = file_error("[set]\nregion = \"westeurope\"\nworkspace = \"y\"\n");
        assert!(
            err.starts_with("v.toml:3: field `set.workspace`: unknown variable"),
            "{err}"
        );
        let err = file_error("[set]\nregion = \"West Europe\"\n");
        assert!(err.starts_with("v.toml:2: field `set.region`"), "{err}");
        assert!(err.contains("did you mean \"westeurope\""), "{err}");
    }

    #[test]
    fn a_flag_overrides_a_bad_variable_without_reading_it() {
        let set = parse_set("region=westeurope").unwrap();
        let e = env(&[("VNETPROBE_REGION", "West Europe")]);
        let ctx = Context::build(None, &[set], &e, &ConfigFile::default()).unwrap();
        assert_eq!(ctx.get("region"), Some("westeurope"));
    }

    #[test]
    fn missing_hint_names_flag() {
        assert!(missing_variable_hint("workspace_id").contains("--set workspace_id="));
        assert!(missing_variable_hint("region").contains("--region"));
    }
}
