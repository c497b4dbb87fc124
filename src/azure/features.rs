//! Where a service tag may be used: Azure's `networkFeatures` (`NSG` for network security
//! groups, `FW` for Azure Firewall, `UDR` for user-defined routes, `API`, `VSE`). The fix plan
//! puts a tag only where Azure takes it: the regional `BatchNodeManagement.<region>` carries no
//! `FW` and no `UDR`, `AzureMachineLearning.<region>` no feature at all, so firewall rules and
//! routes name the global tag.
//!
//! The built-in table below is read from Microsoft's weekly download
//! `ServiceTags_Public_20251106.json` (change number 375; a test checks it against that file);
//! with `--service-tags FILE` the file's own `networkFeatures` decide instead.

use std::collections::BTreeMap;

use super::ServiceTags;

/// The `networkFeatures` a service-tag file gives the tags a run names and their global
/// parents, keyed by the lower-case name (a tag the file holds with null features maps to an
/// empty list; one it does not hold is absent).
pub type FileFeatures = BTreeMap<String, Vec<String>>;

/// What `file` says of `tags` and of each one's global parent.
pub fn from_file<'a>(file: &ServiceTags, tags: impl Iterator<Item = &'a str>) -> FileFeatures {
    let mut out = FileFeatures::new();
    for tag in tags {
        let (family, _) = split(tag);
        for name in [tag, family] {
            if file.tag(name).is_some() {
                let f = file
                    .features(name)
                    .map(<[String]>::to_vec)
                    .unwrap_or_default();
                out.insert(name.to_ascii_lowercase(), f);
            }
        }
    }
    out
}

/// A place a service tag can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A network security group rule's source or destination.
    Nsg,
    /// An Azure Firewall network rule's destination.
    Firewall,
    /// A user-defined route's address prefix.
    Route,
}

impl Use {
    /// The `networkFeatures` word for this use.
    pub fn feature(self) -> &'static str {
        match self {
            Use::Nsg => "NSG",
            Use::Firewall => "FW",
            Use::Route => "UDR",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Use::Nsg => "NSG rules",
            Use::Firewall => "Azure Firewall rules",
            Use::Route => "user-defined routes",
        }
    }
}

/// The tags the catalog names: (family, features of the global tag, features of its regional
/// tags), as `ServiceTags_Public_20251106.json` gives them.
pub const BUILT_IN: &[(&str, &[&str], &[&str])] = &[
    (
        "AzureActiveDirectory",
        &["API", "NSG", "UDR", "FW", "VSE"],
        &[],
    ),
    ("AzureFrontDoor.Frontend", &["API", "NSG", "UDR", "FW"], &[]),
    ("AzureMachineLearning", &["API", "NSG", "UDR", "FW"], &[]),
    ("AzureMonitor", &["API", "NSG", "UDR", "FW"], &["NSG"]),
    ("AzureResourceManager", &["API", "NSG", "UDR", "FW"], &[]),
    (
        "BatchNodeManagement",
        &["API", "NSG", "UDR", "FW"],
        &["API", "NSG"],
    ),
    (
        "MicrosoftContainerRegistry",
        &["API", "NSG", "UDR", "FW"],
        &["API", "NSG", "UDR", "FW"],
    ),
    (
        "Storage",
        &["API", "NSG", "UDR", "FW", "VSE"],
        &["API", "NSG", "UDR", "FW"],
    ),
];

/// A tag's family and whether it is regional: `Storage.westeurope` is (`Storage`, true);
/// `AzureFrontDoor.Frontend` is a global tag with a dot in its name.
fn split(tag: &str) -> (&str, bool) {
    if let Some((family, ..)) = BUILT_IN.iter().find(|(f, ..)| f.eq_ignore_ascii_case(tag)) {
        return (family, false);
    }
    match tag.rsplit_once('.') {
        Some((family, _)) => (family, true),
        None => (tag, false),
    }
}

/// The features of `tag` from the file when it holds the tag, else from the built-in table;
/// None when neither knows it.
fn features(tag: &str, file: Option<&FileFeatures>) -> Option<Vec<String>> {
    if let Some(f) = file.and_then(|file| file.get(&tag.to_ascii_lowercase())) {
        return Some(f.clone());
    }
    let (family, regional) = split(tag);
    BUILT_IN
        .iter()
        .find(|(f, ..)| f.eq_ignore_ascii_case(family))
        .map(|(_, global, region)| {
            let list = if regional { region } else { global };
            list.iter().map(|s| s.to_string()).collect()
        })
}

/// The tag to write for `use_` in place of `tag`, and why it differs when it does: a regional
/// tag without the feature becomes its global parent when that has it. A tag nobody knows is
/// kept as it is (the plan cannot judge it).
pub fn usable(tag: &str, use_: Use, file: Option<&FileFeatures>) -> (String, Option<String>) {
    let want = use_.feature();
    let Some(has) = features(tag, file) else {
        return (tag.to_string(), None);
    };
    if has.iter().any(|f| f == want) {
        return (tag.to_string(), None);
    }
    let (family, regional) = split(tag);
    let source = if file.is_some_and(|f| f.contains_key(&tag.to_ascii_lowercase())) {
        "the service-tag file"
    } else {
        "Azure's service-tag data"
    };
    if regional && features(family, file).is_some_and(|g| g.iter().any(|f| f == want)) {
        return (
            family.to_string(),
            Some(format!(
                "{tag} carries no {want} in {source} ({}): {} take the global {family}",
                if has.is_empty() {
                    "no networkFeatures".to_string()
                } else {
                    format!("networkFeatures {}", has.join(","))
                },
                use_.describe()
            )),
        );
    }
    (
        tag.to_string(),
        Some(format!(
            "{tag} carries no {want} in {source}: {} may refuse it",
            use_.describe()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_tags_without_the_feature_become_their_global_parent() {
        let (tag, why) = usable("BatchNodeManagement.westeurope", Use::Nsg, None);
        assert_eq!(
            (tag.as_str(), why),
            ("BatchNodeManagement.westeurope", None)
        );
        for use_ in [Use::Firewall, Use::Route] {
            let (tag, why) = usable("BatchNodeManagement.westeurope", use_, None);
            assert_eq!(tag, "BatchNodeManagement");
            assert!(why.unwrap().contains("networkFeatures API,NSG"));
        }
        let (tag, _) = usable("AzureMachineLearning.westeurope", Use::Nsg, None);
        assert_eq!(tag, "AzureMachineLearning");
        // Regional storage tags carry every feature; a global tag with a dot is global.
        assert_eq!(
            usable("Storage.westeurope", Use::Route, None).0,
            "Storage.westeurope"
        );
        assert_eq!(
            usable("AzureFrontDoor.FrontEnd", Use::Firewall, None),
            ("AzureFrontDoor.FrontEnd".to_string(), None)
        );
        // Unknown tags are kept, unjudged.
        assert_eq!(
            usable("Sql.westeurope", Use::Firewall, None),
            ("Sql.westeurope".to_string(), None)
        );
    }

    /// The built-in table is what Microsoft's file says: every global tag exactly, and the
    /// features most of each family's regional tags carry.
    #[test]
    fn the_built_in_table_matches_the_real_service_tag_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/ServiceTags_Public_20251106.json");
        let Ok(bytes) = std::fs::read(&path) else {
            panic!("the real service-tag file {} is needed", path.display());
        };
        let file = ServiceTags::parse(&bytes).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let values = raw["values"].as_array().unwrap();
        for (family, global, regional) in BUILT_IN {
            let got = file
                .features(family)
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            assert_eq!(got, global.to_vec(), "{family}");
            let mut counts: std::collections::BTreeMap<Vec<String>, usize> = Default::default();
            for v in values {
                let name = v["name"].as_str().unwrap();
                if name.len() > family.len()
                    && name[..family.len()].eq_ignore_ascii_case(family)
                    && name.as_bytes()[family.len()] == b'.'
                    && !v["properties"]["region"].as_str().unwrap_or("").is_empty()
                {
                    let f: Vec<String> = v["properties"]["networkFeatures"]
                        .as_array()
                        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                        .unwrap_or_default();
                    *counts.entry(f).or_default() += 1;
                }
            }
            let most = counts
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(f, _)| f.clone());
            assert_eq!(
                most.unwrap_or_default(),
                regional.to_vec(),
                "{family} regional: {counts:?}"
            );
        }
        // With the file, the file decides.
        let known = from_file(
            &file,
            ["BatchNodeManagement.westeurope", "Storage.westeurope"].into_iter(),
        );
        assert_eq!(known["batchnodemanagement.westeurope"], ["API", "NSG"]);
        let (tag, why) = usable(
            "BatchNodeManagement.westeurope",
            Use::Firewall,
            Some(&known),
        );
        assert_eq!(tag, "BatchNodeManagement");
        assert!(why.unwrap().contains("in the service-tag file"));
        assert_eq!(
            usable("Storage.westeurope", Use::Firewall, Some(&known)).0,
            "Storage.westeurope"
        );
    }
}
