//! Discovery: what the node says about where it runs (Azure ML job and compute-instance
//! variables, `/mnt/azmnt/.nbvm`, the MLflow tracking URI, the Instance Metadata Service),
//! offered to the context below every flag, `VNETPROBE_*` variable and config key.
//!
//! None of these is a documented contract (requirements, section 6): every value is checked
//! before use, and a malformed one is ignored with a warning, never an error.
//!
//! Among discovery sources the first to offer a variable wins, in this order:
//! 1. job: `AZUREML_ARM_WORKSPACE_NAME`, `AZUREML_WORKSPACE_ID`, `AZUREML_SERVICE_ENDPOINT`
//!    (`https://{region}.api.azureml.ms`: region and cloud), `AZUREML_ARM_SUBSCRIPTION`,
//!    `AZUREML_ARM_RESOURCEGROUP`;
//! 2. ci: `CI_NAME` (instance), `CI_WORKSPACE` (workspace_name), `CI_RESOURCE_GROUP`, read only
//!    when `CI_NAME` and `CI_WORKSPACE` are both set (build systems set `CI_NAME` too);
//! 3. nbvm: `key=value` lines of `{node-root}/mnt/azmnt/.nbvm` (keys in [`NBVM_KEYS`]);
//! 4. mlflow: `MLFLOW_TRACKING_URI=azureml://{region}.api.azureml.ms/mlflow/v1.0/subscriptions/
//!    {sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}`;
//! 5. batch: `AZ_BATCH_ACCOUNT_URL` (batch_account = its host);
//! 6. imds: `compute.location` (region) and `compute.azEnvironment` (cloud), asked only when the
//!    region is still unknown, since it adds nothing else;
//! 7. derived: a cloud implied by the region's name (`usgov*`, `usdod*`: usgov; `china*`: china).
//!
//! Workspace sources come before IMDS because templates name the workspace's region, and IMDS
//! only knows the VM's. `resource_group` and `subscription` are recorded for the operator (they
//! appear in `vnetprobe context` and the report) but no template uses them.

mod imds;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Cloud, ConfigFile, Context, Source};
use crate::settings::{self, Layers, Setting, SettingError, Shown};

/// The Instance Metadata Service, when `--imds-endpoint` is not given.
pub const IMDS_DEFAULT: &str = "http://169.254.169.254";
/// Total time for IMDS, connect included: the most discovery can cost off Azure.
pub const IMDS_DEADLINE: Duration = Duration::from_secs(1);
/// The compute-instance file, relative to `--node-root`.
pub const NBVM_PATH: &str = "mnt/azmnt/.nbvm";
/// The file is a few lines; a bigger one is not the file we know.
const NBVM_CAP: u64 = 64 * 1024;

/// Variables discovery records for the operator that no template uses.
/// `vm_name` and `private_ip` (from IMDS) fill the commands of the inbound rows.
/// `subnet`, `vm_size` and `zone` (from IMDS too) are the node's facts that `merge` lines
/// failure groups up with.
pub const INFO_VARIABLES: &[&str] = &[
    "resource_group",
    "subscription",
    "vm_name",
    "private_ip",
    "subnet",
    "vm_size",
    "zone",
];

/// The process variables discovery reads (besides `VNETPROBE_*`).
pub const ENV_KEYS: &[&str] = &[
    "AZUREML_ARM_WORKSPACE_NAME",
    "AZUREML_WORKSPACE_ID",
    "AZUREML_SERVICE_ENDPOINT",
    "AZUREML_ARM_SUBSCRIPTION",
    "AZUREML_ARM_RESOURCEGROUP",
    "CI_NAME",
    "CI_WORKSPACE",
    "CI_RESOURCE_GROUP",
    "MLFLOW_TRACKING_URI",
    "AZ_BATCH_ACCOUNT_URL",
];

/// Keys accepted in `.nbvm`, compared without case, `_`, `-` or `.`; others are ignored.
pub const NBVM_KEYS: &[(&str, &str)] = &[
    ("instance", "instance"),
    ("instancename", "instance"),
    ("computename", "instance"),
    ("ciname", "instance"),
    ("workspace", "workspace_name"),
    ("workspacename", "workspace_name"),
    ("ciworkspace", "workspace_name"),
    ("workspaceid", "workspace_id"),
    ("region", "region"),
    ("location", "region"),
    ("resourcegroup", "resource_group"),
    ("ciresourcegroup", "resource_group"),
    ("subscription", "subscription"),
    ("subscriptionid", "subscription"),
];

/// How discovery runs, resolved from flags > `VNETPROBE_DISCOVER` > config file > defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub enabled: Setting<bool>,
    pub imds: Setting<SocketAddr>,
    pub node_root: Setting<PathBuf>,
}

/// The discovery flags as given on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub no_discover: bool,
    pub imds_endpoint: Option<&'a str>,
    pub node_root: Option<&'a Path>,
}

impl Settings {
    /// Resolves every setting, used or not (a bad endpoint is an error with discovery off too);
    /// errors name the flag, variable or file line.
    pub fn resolve(
        flags: Flags,
        env: &BTreeMap<String, String>,
        file: &ConfigFile,
    ) -> Result<Settings, SettingError> {
        let enabled = Layers::new(|raw: String| {
            parse_switch(&raw).ok_or_else(|| "use 1 or 0 (true/false, yes/no, on/off)".to_string())
        })
        .checked(settings::flag(
            "--no-discover",
            flags.no_discover.then_some(false),
        ))
        .given(settings::env(env, "VNETPROBE_DISCOVER"))
        .checked(file.at("discover", file.discover.as_ref()))
        .or(true)?;
        let imds = Layers::new(|raw: String| parse_imds_endpoint(&raw))
            .given(settings::flag(
                "--imds-endpoint",
                flags.imds_endpoint.map(str::to_string),
            ))
            .given(file.at("imds-endpoint", file.imds_endpoint.as_ref()))
            .or(parse_imds_endpoint(IMDS_DEFAULT).expect("the default endpoint parses"))?;
        let node_root = Layers::new(checked_dir)
            .given(settings::flag(
                "--node-root",
                flags.node_root.map(Path::to_path_buf),
            ))
            .given(file.at("node-root", file.node_root.as_ref()))
            .or(PathBuf::from("/"))?;
        Ok(Settings {
            enabled,
            imds,
            node_root,
        })
    }

    /// The settings as `vnetprobe context` shows them.
    pub fn shown(&self) -> [(&'static str, Shown); 3] {
        [
            ("discover", self.enabled.shown(bool::to_string)),
            ("imds-endpoint", self.imds.shown(|a| format!("http://{a}"))),
            (
                "node-root",
                self.node_root.shown(|d| d.display().to_string()),
            ),
        ]
    }

    /// Where the node's files are read, when discovery is on.
    pub fn node_root(&self) -> Option<&Path> {
        self.enabled.value.then_some(self.node_root.value.as_path())
    }
}

fn parse_switch(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn checked_dir(dir: PathBuf) -> Result<PathBuf, String> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err("not a directory".into())
    }
}

/// `http://IP[:PORT]`: IMDS is asked directly, so no name to resolve and no TLS.
pub fn parse_imds_endpoint(raw: &str) -> Result<SocketAddr, String> {
    const FORM: &str = "expected http://IP[:PORT], e.g. http://169.254.169.254";
    let url = crate::address::parse_url(raw, false).map_err(|_| FORM.to_string())?;
    if url.tls {
        return Err(format!("IMDS answers plain HTTP: {FORM}"));
    }
    if url.path != "/" {
        return Err(format!("give the base URL without a path: {FORM}"));
    }
    let ip: IpAddr = url
        .host
        .parse()
        .map_err(|_| format!("the host must be an IP address: {FORM}"))?;
    Ok(SocketAddr::new(ip, url.port))
}

/// Reads the variables discovery uses from the process environment.
pub fn process_env() -> BTreeMap<String, String> {
    ENV_KEYS
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect()
}

/// Offers everything discovered to `ctx`; values already set by a higher source stay.
/// `identity`: the node's own Azure identity (VM name, address) is wanted (the inbound rows'
/// commands), so IMDS is asked even when the region is known.
pub fn discover(
    ctx: &mut Context,
    settings: &Settings,
    env: &BTreeMap<String, String>,
    identity: bool,
) {
    if !settings.enabled.value {
        log::debug!("discovery is off");
        return;
    }
    apply(ctx, job_env(env), Source::Job);
    apply(ctx, ci_env(env), Source::Ci);
    apply(ctx, nbvm_file(&settings.node_root.value), Source::Nbvm);
    if let Some(uri) = non_empty(env, "MLFLOW_TRACKING_URI") {
        apply(ctx, mlflow_uri(uri), Source::Mlflow);
    }
    apply(ctx, batch_env(env), Source::Batch);
    if ctx.get("region").is_none() || identity {
        apply(ctx, ask_imds(settings.imds.value), Source::Imds);
    } else {
        log::debug!("region known: the Instance Metadata Service is not asked");
    }
    if !ctx.has_cloud()
        && let Some(cloud) = ctx.get("region").and_then(cloud_of_region)
    {
        ctx.offer_cloud(cloud, Source::Derived);
    }
}

/// What one source found, already checked.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    vars: Vec<(&'static str, String)>,
    cloud: Option<Cloud>,
}

impl Findings {
    /// Keeps `raw` as `var` when it is well formed; otherwise warns, naming `origin`.
    fn var(&mut self, var: &'static str, raw: &str, origin: &str) {
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        match super::values::check(var, raw) {
            Ok(v) => self.vars.push((var, v)),
            Err(why) => log::warn!("{origin}: {var} {:?} ignored: {why}", shorten(raw)),
        }
    }

    /// Region and cloud from a `{region}.api.azureml.ms` host (or a sovereign cloud's).
    fn api_host(&mut self, host: &str, origin: &str) {
        match region_of_api_host(host) {
            Some((region, cloud)) => {
                self.var("region", region, origin);
                self.cloud = Some(cloud);
            }
            None => log::warn!(
                "{origin}: host {host:?} is not {{region}}.api.azureml.ms (or a sovereign cloud's): ignored"
            ),
        }
    }
}

fn apply(ctx: &mut Context, found: Findings, source: Source) {
    for (var, value) in &found.vars {
        ctx.offer(var, value, source);
    }
    if let Some(cloud) = found.cloud {
        ctx.offer_cloud(cloud, source);
    }
}

fn non_empty<'a>(env: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s.to_string()
    }
}

fn api_domain(cloud: Cloud) -> &'static str {
    cloud
        .suffixes()
        .iter()
        .find(|(k, _)| *k == "api_domain")
        .map(|(_, v)| *v)
        .expect("every cloud has an api_domain")
}

/// `westeurope.api.azureml.ms` -> (`westeurope`, public); the sovereign clouds' api domains too.
fn region_of_api_host(host: &str) -> Option<(&str, Cloud)> {
    Cloud::ALL.iter().copied().find_map(|cloud| {
        let region = host.strip_suffix(api_domain(cloud))?.strip_suffix('.')?;
        (!region.is_empty() && !region.contains('.')).then_some((region, cloud))
    })
}

/// Azure's region names say their cloud.
fn cloud_of_region(region: &str) -> Option<Cloud> {
    if region.starts_with("usgov") || region.starts_with("usdod") {
        Some(Cloud::Usgov)
    } else if region.starts_with("china") {
        Some(Cloud::China)
    } else {
        None
    }
}

fn job_env(env: &BTreeMap<String, String>) -> Findings {
    let mut f = Findings::default();
    for (key, var) in [
        ("AZUREML_ARM_WORKSPACE_NAME", "workspace_name"),
        ("AZUREML_WORKSPACE_ID", "workspace_id"),
        ("AZUREML_ARM_SUBSCRIPTION", "subscription"),
        ("AZUREML_ARM_RESOURCEGROUP", "resource_group"),
    ] {
        if let Some(v) = non_empty(env, key) {
            f.var(var, v, &format!("environment {key}"));
        }
    }
    if let Some(raw) = non_empty(env, "AZUREML_SERVICE_ENDPOINT") {
        let origin = "environment AZUREML_SERVICE_ENDPOINT";
        match crate::address::parse_url(raw, false) {
            Ok(url) => f.api_host(&url.host, origin),
            Err(_) => {
                log::warn!("{origin}: not a URL like https://{{region}}.api.azureml.ms: ignored")
            }
        }
    }
    f
}

/// Read only when `CI_NAME` and `CI_WORKSPACE` are both set, as on a compute instance: build
/// systems set `CI_NAME` too (Codeship sets it to its own name).
fn ci_env(env: &BTreeMap<String, String>) -> Findings {
    let mut f = Findings::default();
    if non_empty(env, "CI_NAME").is_none() || non_empty(env, "CI_WORKSPACE").is_none() {
        if non_empty(env, "CI_NAME").is_some() {
            log::debug!("CI_NAME without CI_WORKSPACE: not a compute instance, CI_* not used");
        }
        return f;
    }
    for (key, var) in [
        ("CI_NAME", "instance"),
        ("CI_WORKSPACE", "workspace_name"),
        ("CI_RESOURCE_GROUP", "resource_group"),
    ] {
        if let Some(v) = non_empty(env, key) {
            f.var(var, v, &format!("environment {key}"));
        }
    }
    f
}

fn batch_env(env: &BTreeMap<String, String>) -> Findings {
    let mut f = Findings::default();
    if let Some(raw) = non_empty(env, "AZ_BATCH_ACCOUNT_URL") {
        match crate::address::parse_url(raw, false) {
            Ok(url) => f.var(
                "batch_account",
                &url.host,
                "environment AZ_BATCH_ACCOUNT_URL",
            ),
            Err(_) => log::warn!(
                "environment AZ_BATCH_ACCOUNT_URL: not a URL like https://ACCOUNT.REGION.batch.azure.com: ignored"
            ),
        }
    }
    f
}

/// The tracking URI of an Azure ML workspace; another tracking server is not an error.
fn mlflow_uri(raw: &str) -> Findings {
    const ORIGIN: &str = "environment MLFLOW_TRACKING_URI";
    let mut f = Findings::default();
    let url = match url::Url::parse(raw) {
        Ok(url) if url.scheme() == "azureml" => url,
        Ok(_) => {
            log::debug!(
                "MLFLOW_TRACKING_URI is not an azureml:// URI: not an Azure ML workspace's"
            );
            return f;
        }
        Err(_) if !raw.contains("://") => {
            log::debug!("MLFLOW_TRACKING_URI is not a URI: not an Azure ML workspace's");
            return f;
        }
        Err(_) => {
            log::warn!(
                "{ORIGIN}: not a URI like azureml://{{region}}.api.azureml.ms/mlflow/...: ignored"
            );
            return f;
        }
    };
    // The URI's own form has no credentials; refuse one with any, without echoing it.
    let host = url
        .host_str()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !url.username().is_empty()
        || url.password().is_some()
        || crate::address::check_host(&host).is_err()
    {
        log::warn!(
            "{ORIGIN}: not a URI like azureml://{{region}}.api.azureml.ms/mlflow/...: ignored"
        );
        return f;
    }
    f.api_host(&host, ORIGIN);
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    for pair in segments.windows(2) {
        let var = match pair[0].to_ascii_lowercase().as_str() {
            "subscriptions" => "subscription",
            "resourcegroups" => "resource_group",
            "workspaces" => "workspace_name",
            _ => continue,
        };
        f.var(var, pair[1], ORIGIN);
    }
    if !f.vars.iter().any(|(v, _)| *v == "workspace_name") {
        log::warn!("{ORIGIN}: no /workspaces/NAME in the path: workspace name not taken");
    }
    f
}

fn nbvm_file(root: &Path) -> Findings {
    let path = root.join(NBVM_PATH);
    let shown = path.display().to_string();
    // A regular file under the cap (a FIFO or device there must not hang discovery).
    match crate::input::read(&path, NBVM_CAP) {
        Ok(text) => match String::from_utf8(text) {
            Ok(text) => nbvm(&text, &shown),
            Err(_) => {
                log::warn!("{shown}: not UTF-8 text: ignored");
                Findings::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("{shown}: absent, not a compute instance");
            Findings::default()
        }
        Err(e) => {
            log::warn!("{shown}: {e}: ignored");
            Findings::default()
        }
    }
}

/// `key=value` lines; `#` comments, blank lines, `export ` and quotes around values allowed.
fn nbvm(text: &str, shown: &str) -> Findings {
    let mut f = Findings::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("{shown}:{}", n + 1);
        let Some((key, value)) = line.strip_prefix("export ").unwrap_or(line).split_once('=')
        else {
            log::warn!("{origin}: expected key=value: line ignored");
            continue;
        };
        let norm: String = key
            .trim()
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | '.'))
            .collect::<String>()
            .to_ascii_lowercase();
        let Some((_, var)) = NBVM_KEYS.iter().find(|(k, _)| *k == norm) else {
            log::debug!("{origin}: key {:?} not used", shorten(key.trim()));
            continue;
        };
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        f.var(var, value, &origin);
    }
    f
}

fn ask_imds(addr: SocketAddr) -> Findings {
    let origin = format!("Instance Metadata Service at {addr}");
    let mut f = Findings::default();
    let body = match imds::fetch_blocking(addr, IMDS_DEADLINE) {
        Ok(body) => body,
        Err(imds::FetchError::Silent(why)) => {
            log::info!("{origin}: {why} (normal off Azure; --no-discover skips it)");
            return f;
        }
        Err(imds::FetchError::Bad(why)) => {
            log::warn!("{origin}: {why}: ignored");
            return f;
        }
    };
    let answer = match imds::parse(&body) {
        Ok(a) => a,
        Err(why) => {
            log::warn!("{origin}: {why}: ignored");
            return f;
        }
    };
    if let Some(location) = &answer.compute.location {
        f.var("region", location, &format!("{origin}: compute.location"));
    }
    let c = &answer.compute;
    for (var, value, field) in [
        ("vm_name", &c.name, "compute.name"),
        ("vm_size", &c.vm_size, "compute.vmSize"),
        ("zone", &c.zone, "compute.zone"),
        ("subscription", &c.subscription_id, "compute.subscriptionId"),
        (
            "resource_group",
            &c.resource_group_name,
            "compute.resourceGroupName",
        ),
    ] {
        if let Some(v) = value {
            f.var(var, v, &format!("{origin}: {field}"));
        }
    }
    if let Some(ip) = answer.private_ip() {
        f.var(
            "private_ip",
            ip,
            &format!("{origin}: network private address"),
        );
    }
    if let Some(subnet) = answer.subnet() {
        f.var("subnet", &subnet, &format!("{origin}: network subnet"));
    }
    if let Some(env) = &answer.compute.az_environment {
        match Cloud::parse(env) {
            Some(cloud) => f.cloud = Some(cloud),
            None => log::warn!(
                "{origin}: compute.azEnvironment {:?} is not a cloud vnetprobe knows (public, usgov, china): ignored",
                shorten(env)
            ),
        }
    }
    f
}

#[cfg(test)]
mod tests;
