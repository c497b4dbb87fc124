//! The one check of every variable's value, whatever its source: a flag, a `VNETPROBE_*`
//! variable, the config file or discovery. Flags and files exit 2 on a bad value; discovery
//! drops it with a warning. Either way the same rule, the same words.

/// Services that can sit behind a private endpoint, as `private_endpoints` lists them.
pub const PRIVATE_ENDPOINT_SERVICES: &[&str] = &[
    "workspace",
    "blob",
    "file",
    "queue",
    "table",
    "dfs",
    "keyvault",
    "acr",
];

/// What `private_endpoints` is when nothing sets it: the workspace, its key vault and its
/// registry, which the documents expect behind private endpoints; storage services only when
/// listed, since a service endpoint (the VNet allowed on the account) is an equally valid setup.
pub const DEFAULT_PRIVATE_ENDPOINTS: &str = "workspace,keyvault,acr";

/// Checks `value` for `var`; returns it normalised, or why it is refused (with a suggestion
/// where one can be made).
pub fn check(var: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    let all = |ok: fn(u8) -> bool| v.bytes().all(ok);
    let dns_label = |s: &str| {
        (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let refuse = |why: &str| Err(why.to_string());
    match var {
        "region" => {
            if (2..=40).contains(&v.len()) && all(|b| b.is_ascii_alphanumeric()) {
                return Ok(v.to_ascii_lowercase());
            }
            let squeezed: String = v
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if (2..=40).contains(&squeezed.len()) {
                Err(format!(
                    "a region is the programmatic name, letters and digits: did you mean {squeezed:?}?"
                ))
            } else {
                refuse("a region is letters and digits, like westeurope")
            }
        }
        "instance" if dns_label(v) => Ok(v.to_string()),
        "instance" => refuse("a compute-instance name is a DNS label (letters, digits, '-')"),
        "workspace_name"
            if (1..=64).contains(&v.len())
                && all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(v.to_string())
        }
        "workspace_name" => refuse("a workspace name is letters, digits, '-' and '_'"),
        "workspace_id" | "subscription" if is_guid(v) => Ok(v.to_ascii_lowercase()),
        "workspace_id" | "subscription" => {
            refuse("expected a GUID like 0f8fad5b-d9cb-469f-a165-70867728950e")
        }
        "resource_group"
            if (1..=90).contains(&v.len())
                && all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
                && !v.ends_with('.') =>
        {
            Ok(v.to_string())
        }
        "resource_group" => refuse("not a resource group name"),
        "storage_account" if (3..=24).contains(&v.len()) && all(|b| b.is_ascii_alphanumeric()) => {
            Ok(v.to_ascii_lowercase())
        }
        "storage_account" => refuse(
            "a storage account name is 3 to 24 letters and digits (the NAME of NAME.blob.core.windows.net)",
        ),
        "acr" if (1..=50).contains(&v.len()) && all(|b| b.is_ascii_alphanumeric()) => {
            Ok(v.to_ascii_lowercase())
        }
        "acr" => {
            refuse("a container registry name is letters and digits (the NAME of NAME.azurecr.io)")
        }
        "keyvault" if (3..=24).contains(&v.len()) && dns_label(v) => Ok(v.to_ascii_lowercase()),
        "keyvault" => refuse(
            "a key vault name is 3 to 24 letters, digits and '-' (the NAME of NAME.vault.azure.net)",
        ),
        "batch_account" if v.len() <= 253 && v.split('.').all(dns_label) => {
            Ok(v.to_ascii_lowercase())
        }
        "batch_account" => refuse("not a host name"),
        "vm_name"
            if (1..=64).contains(&v.len())
                && all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Ok(v.to_string())
        }
        "vm_name" => refuse("not a VM name"),
        "private_ip" => v
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| "not an IP address".to_string()),
        "subnet" => subnet(v),
        "vm_size"
            if (1..=64).contains(&v.len()) && all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(v.to_string())
        }
        "vm_size" => refuse("a VM size is letters, digits and '_', like Standard_D4s_v3"),
        "zone" if (1..=8).contains(&v.len()) && all(|b| b.is_ascii_alphanumeric()) => {
            Ok(v.to_string())
        }
        "zone" => refuse("an availability zone is a short name like 1, 2 or 3"),
        // A Kubernetes node name (the downward API's spec.nodeName): a DNS subdomain.
        "k8s_node"
            if v.len() <= 253
                && v.split('.')
                    .all(|l| dns_label(l) && !l.bytes().any(|b| b.is_ascii_uppercase())) =>
        {
            Ok(v.to_string())
        }
        "k8s_node" => refuse("a Kubernetes node name is lower-case letters, digits, '-' and '.'"),
        "exfil_url" => exfil_url(v).map(|_| v.to_string()),
        // A node running `vnetprobe listen`: a host name or an address.
        "peer" => crate::address::check_host(v).map(|()| v.to_ascii_lowercase()),
        "private_endpoints" => private_endpoints(v).map(|list| list.join(",")),
        "other_storage_account" => refuse(
            "replaced by exfil_url: a TCP connect to another account proves nothing about a service \
             endpoint policy; set --set exfil_url=https://OTHERACCOUNT.blob.core.windows.net/CONTAINER/BLOB \
             (a publicly readable blob outside the workspace)",
        ),
        _ => refuse("not a variable"),
    }
}

/// `ADDRESS/PREFIX` with the host bits clear, normalised (`10.0.2.0/24`).
fn subnet(v: &str) -> Result<String, String> {
    const FORM: &str = "a subnet is ADDRESS/PREFIX, like 10.0.2.0/24";
    let (addr, prefix) = v.split_once('/').ok_or(FORM)?;
    let addr: std::net::IpAddr = addr.trim().parse().map_err(|_| FORM)?;
    let prefix: u8 = prefix.trim().parse().map_err(|_| FORM)?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(format!("{FORM} (a prefix of at most {bits})"));
    }
    Ok(format!("{addr}/{prefix}"))
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The exfiltration URL: `https://HOST/PATH` on port 443, naming an object (a path beyond `/`).
/// Returns the host and the path.
pub fn exfil_url(raw: &str) -> Result<(String, String), String> {
    const FORM: &str = "expected https://OTHERACCOUNT.blob.core.windows.net/CONTAINER/BLOB";
    if raw.contains('?') || raw.contains('#') {
        return Err(format!(
            "{FORM}: without a query (a publicly readable blob needs no SAS token, and a token is a secret)"
        ));
    }
    let url = crate::address::parse_url(raw, false).map_err(|_| FORM.to_string())?;
    if !url.tls || url.port != 443 {
        return Err(format!("{FORM} (https on port 443)"));
    }
    if url.path.trim_matches('/').is_empty() {
        return Err(format!(
            "{FORM}: name an object, since a policy is enforced per request"
        ));
    }
    if url.host.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{FORM}: a storage host name, not an address"));
    }
    Ok((url.host, url.path))
}

/// `private_endpoints`: a comma list of services, or `none`.
pub fn private_endpoints(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim().to_ascii_lowercase();
    if raw == "none" {
        return Ok(Vec::new());
    }
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if !PRIVATE_ENDPOINT_SERVICES.contains(&item) {
            return Err(format!(
                "unknown service {item:?} (a comma list of {}, or none)",
                PRIVATE_ENDPOINT_SERVICES.join(", ")
            ));
        }
        if !out.iter().any(|s| s == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_variable() {
        assert_eq!(check("region", "WestEurope"), Ok("westeurope".into()));
        let spaced = check("region", "West Europe").unwrap_err();
        assert!(spaced.contains("did you mean \"westeurope\""), "{spaced}");
        assert!(
            check("region", "west-europe")
                .unwrap_err()
                .contains("\"westeurope\"")
        );
        assert!(check("instance", "-x").is_err());
        assert!(check("instance", &"a".repeat(64)).is_err());
        assert!(check("workspace_id", "0f8fad5b-d9cb-469f-a165-70867728950").is_err());
        assert!(check("batch_account", "a..b").is_err());
        assert!(check("resource_group", "rg.").is_err());
        assert!(check("acr", "my-registry").is_err());
        assert_eq!(check("storage_account", "Sa1Data"), Ok("sa1data".into()));
        assert!(check("storage_account", "sa1.blob.core.windows.net").is_err());
        assert!(check("keyvault", "kv_1").is_err());
        assert_eq!(check("peer", "10.0.1.5"), Ok("10.0.1.5".into()));
        assert!(check("peer", "a b").is_err());
    }

    #[test]
    fn exfil_url_names_an_object_over_https() {
        assert_eq!(
            exfil_url("https://sa2.blob.core.windows.net/public/probe.txt"),
            Ok((
                "sa2.blob.core.windows.net".into(),
                "/public/probe.txt".into()
            ))
        );
        for bad in [
            "http://sa2.blob.core.windows.net/c/b",
            "https://sa2.blob.core.windows.net/",
            "https://sa2.blob.core.windows.net:8443/c/b",
            "https://10.0.0.1/c/b",
            "https://sa2.blob.core.windows.net/c/b?sv=1&sig=secret",
            "sa2",
        ] {
            assert!(exfil_url(bad).is_err(), "{bad}");
        }
        assert!(
            check("other_storage_account", "sa2")
                .unwrap_err()
                .contains("exfil_url")
        );
    }

    #[test]
    fn private_endpoint_lists() {
        assert_eq!(
            private_endpoints("Workspace, blob,blob"),
            Ok(vec!["workspace".to_string(), "blob".to_string()])
        );
        assert_eq!(private_endpoints("none"), Ok(vec![]));
        assert!(
            private_endpoints("blob,cosmos")
                .unwrap_err()
                .contains("cosmos")
        );
        assert_eq!(
            private_endpoints(DEFAULT_PRIVATE_ENDPOINTS).map(|l| l.len()),
            Ok(3)
        );
    }
}
