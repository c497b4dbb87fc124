//! Host and path templates: `{variable}` placeholders, checked at load time and expanded per run.

use std::collections::BTreeMap;

/// Variables a deployment sets (flags, environment, config file, discovery).
pub const DEPLOYMENT_VARIABLES: &[&str] = &[
    "region",
    "workspace_id",
    "workspace_name",
    "storage_account",
    "instance",
    "acr",
    "keyvault",
    "batch_account",
    "exfil_url",
    "private_endpoints",
    "peer",
    "k8s_node",
];

/// Variables derived from others or from the cloud; never set directly.
pub const DERIVED_VARIABLES: &[&str] = &[
    "notebook_label",
    "exfil_host",
    "exfil_path",
    "node",
    "graph_host",
    "aml_domain",
    "api_domain",
    "storage_suffix",
    "login_host",
    "arm_host",
    "batch_suffix",
    "notebooks_domain",
    "vault_domain",
    "acr_domain",
    "studio_host",
];

pub fn is_known(name: &str) -> bool {
    DEPLOYMENT_VARIABLES.contains(&name) || DERIVED_VARIABLES.contains(&name)
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed `{variable}` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses and checks every placeholder against the known variables.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {s:?}"))?;
            let name = &after[..close];
            if !is_known(name) {
                return Err(format!(
                    "unknown variable {{{name}}} in {s:?} (known: {})",
                    DEPLOYMENT_VARIABLES
                        .iter()
                        .chain(DERIVED_VARIABLES)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            pieces.push(Piece::Var(name.to_string()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray '}}' in {s:?}"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    /// Expands against `vars`; on a missing variable returns its name.
    pub fn expand(&self, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match vars.get(v) {
                    Some(value) => out.push_str(value),
                    None => return Err(v.clone()),
                },
            }
        }
        Ok(out)
    }

    /// The variables `vars` lacks, in the order the template names them.
    pub fn missing(&self, vars: &BTreeMap<String, String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Var(v) = piece
                && !vars.contains_key(v)
                && !out.contains(v)
            {
                out.push(v.clone());
            }
        }
        out
    }

    /// Expands what `vars` knows and shows each missing variable as `<name>`: for people, on a
    /// target that is skipped, never the raw `{template}`.
    pub fn expand_partial(&self, vars: &BTreeMap<String, String>) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Var(v) => vars.get(v).cloned().unwrap_or_else(|| placeholder(v)),
            })
            .collect()
    }
}

/// How a missing variable shows in a partly expanded host: `<instance>`.
pub fn placeholder(var: &str) -> String {
    format!("<{var}>")
}

/// The first label of a workspace's notebook host: `ml-{workspace_name}-{region}-{workspace_id}`,
/// at most 63 characters (the DNS label limit), made to fit by truncating the workspace name.
pub fn notebook_label(workspace_name: &str, region: &str, workspace_id: &str) -> String {
    const MAX: usize = 63;
    let fixed = "ml-".len() + 1 + region.len() + 1 + workspace_id.len();
    let room = MAX.saturating_sub(fixed);
    let name: String = workspace_name.chars().take(room).collect();
    format!("ml-{name}-{region}-{workspace_id}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_known_variables() {
        let t = Template::parse("{region}.tundra.{aml_domain}").unwrap();
        let v = vars(&[("region", "westeurope"), ("aml_domain", "azureml.ms")]);
        assert_eq!(t.expand(&v).unwrap(), "westeurope.tundra.azureml.ms");
    }

    #[test]
    fn missing_variable_is_named() {
        let t = Template::parse("{instance}.{region}.instances.azureml.ms").unwrap();
        assert_eq!(t.expand(&vars(&[("region", "x")])).unwrap_err(), "instance");
        assert_eq!(
            t.expand_partial(&vars(&[("region", "x")])),
            "<instance>.x.instances.azureml.ms"
        );
    }

    #[test]
    fn unknown_and_malformed_placeholders_are_rejected() {
        assert!(
            Template::parse("{regoin}.api.azureml.ms")
                .unwrap_err()
                .contains("unknown variable {regoin}")
        );
        assert!(
            Template::parse("{region.api")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            Template::parse("region}.api")
                .unwrap_err()
                .contains("stray")
        );
    }

    #[test]
    fn notebook_label_short_name_is_kept() {
        let id = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(
            notebook_label("ws1", "westeurope", id),
            format!("ml-ws1-westeurope-{id}")
        );
    }

    #[test]
    fn notebook_label_long_name_is_truncated_to_63() {
        let id = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        let label = notebook_label("MyVeryLongWorkspaceNameForTraining", "westeurope", id);
        assert_eq!(label.len(), 63);
        // 63 - len("ml-") - 1 - len("westeurope") - 1 - 36 = 12 characters of the name survive.
        assert_eq!(label, format!("ml-myverylongwo-westeurope-{id}"));
        assert!(label.ends_with(id), "the workspace id is never cut");
    }

    #[test]
    fn notebook_label_at_exact_limit_is_untouched() {
        let id = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        let name = "a".repeat(12);
        assert_eq!(notebook_label(&name, "westeurope", id).len(), 63);
        assert!(notebook_label(&name, "westeurope", id).contains(&name));
    }
}
