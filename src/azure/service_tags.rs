//! Azure's service tags as a file: the weekly download ("Azure IP Ranges and Service Tags",
//! `ServiceTags_Public_YYYYMMDD.json`: numeric change numbers, `regionId`, `platform`) or
//! `az network list-service-tags --location X` (string change numbers, no `regionId`, the shape
//! of the REST API's Service Tags - List example). Which tags hold an address, a tag's prefixes
//! and its `networkFeatures` (where the tag may be used: `NSG`, `UDR`, `FW`, `API`, `VSE`).

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;

use super::prefix::PrefixSet;

/// The most tags and prefixes a file may hold (the real public file: 3,039 tags, 93,362
/// prefixes): a hostile file is refused before it costs memory.
pub const MAX_TAGS: usize = 50_000;
pub const MAX_PREFIXES: usize = 2_000_000;

/// Which of Azure's two shapes a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The weekly download.
    Download,
    /// `az network list-service-tags`.
    Cli,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Download => "download",
            Shape::Cli => "az network list-service-tags",
        }
    }
}

/// One tag.
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    /// Lowercase region (`westeurope`), empty for a global tag.
    pub region: String,
    pub system_service: String,
    /// `networkFeatures` as given; None where the file says null or nothing.
    pub features: Option<Vec<String>>,
    pub prefixes: PrefixSet,
}

/// A loaded service-tag file.
#[derive(Debug, Clone)]
pub struct ServiceTags {
    pub shape: Shape,
    /// The file's change number (the download's number, the CLI's string), as text.
    pub change_number: String,
    pub cloud: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChangeNumber<'a> {
    Number(u64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile<'a> {
    change_number: Option<ChangeNumber<'a>>,
    #[serde(borrow, default)]
    cloud: Option<Cow<'a, str>>,
    #[serde(borrow)]
    values: Option<Vec<RawTag<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTag<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    properties: Option<RawProps<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProps<'a> {
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(default)]
    region_id: Option<u64>,
    #[serde(borrow, default)]
    system_service: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    address_prefixes: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    network_features: Option<Vec<Cow<'a, str>>>,
}

impl ServiceTags {
    /// Parses a file's bytes; the error says what is wrong (the caller names the file).
    pub fn parse(bytes: &[u8]) -> Result<ServiceTags, String> {
        let raw: RawFile = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a service-tag file (JSON error at line {} column {}: {})",
                e.line(),
                e.column(),
                short(&e.to_string())
            )
        })?;
        let values = raw.values.ok_or(
            "no `values` array: not the service-tag download nor `az network list-service-tags` output",
        )?;
        let (shape, change_number) = match raw.change_number {
            Some(ChangeNumber::Number(n)) => (Shape::Download, n.to_string()),
            Some(ChangeNumber::Text(t)) => (Shape::Cli, t.into_owned()),
            None => return Err("no top-level `changeNumber`: not a service-tag file".into()),
        };
        if values.len() > MAX_TAGS {
            return Err(format!(
                "{} tags, more than the {MAX_TAGS} a service-tag file may hold",
                values.len()
            ));
        }
        let mut total = 0usize;
        let mut tags = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let name = v
                .name
                .filter(|n| !n.is_empty() && n.len() <= 256)
                .ok_or_else(|| format!("values[{i}]: no `name`"))?;
            let where_ = || format!("values[{i}] ({})", crate::printable::printable(&name));
            let props = v
                .properties
                .ok_or_else(|| format!("{}: no `properties`", where_()))?;
            if shape == Shape::Download && props.region_id.is_none() {
                return Err(format!(
                    "{}: no `regionId`, which the download has on every tag (numeric change numbers \
                     are the download's shape)",
                    where_()
                ));
            }
            let prefixes = props
                .address_prefixes
                .ok_or_else(|| format!("{}: no `addressPrefixes`", where_()))?;
            total += prefixes.len();
            if total > MAX_PREFIXES {
                return Err(format!(
                    "more than {MAX_PREFIXES} prefixes in all, more than a service-tag file may hold"
                ));
            }
            let prefixes = PrefixSet::parse(prefixes.iter().map(|p| p.as_ref()))
                .map_err(|e| format!("{}: addressPrefixes: {e}", where_()))?;
            tags.push(Tag {
                name: name.into_owned(),
                region: props
                    .region
                    .map(|r| r.to_ascii_lowercase())
                    .unwrap_or_default(),
                system_service: props
                    .system_service
                    .map(Cow::into_owned)
                    .unwrap_or_default(),
                features: props
                    .network_features
                    .map(|f| f.into_iter().map(Cow::into_owned).collect()),
                prefixes,
            });
        }
        Ok(ServiceTags {
            shape,
            change_number,
            cloud: raw.cloud.map(Cow::into_owned).unwrap_or_default(),
            tags,
        })
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The tag spelt `name`, compared without case (the catalog says `Storage.westeurope`, the
    /// file `Storage.WestEurope`).
    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Where the tag may be used (`networkFeatures`): None for a tag the file does not hold, or
    /// holds with null features.
    pub fn features(&self, tag: &str) -> Option<&[String]> {
        self.tag(tag)?.features.as_deref()
    }

    /// The tag's prefixes, merged; None for a tag the file does not hold.
    pub fn prefixes(&self, tag: &str) -> Option<&PrefixSet> {
        self.tag(tag).map(|t| &t.prefixes)
    }

    /// The file's change number (the addresses change weekly: the fix plan quotes it).
    pub fn change_number(&self) -> &str {
        &self.change_number
    }

    /// Every tag holding `ip`, regional tags before their global parents, then by name.
    pub fn tags_of(&self, ip: IpAddr) -> Vec<&str> {
        let mut found: Vec<&Tag> = self
            .tags
            .iter()
            .filter(|t| t.prefixes.contains(ip))
            .collect();
        found.sort_by(|a, b| (a.region.is_empty(), &a.name).cmp(&(b.region.is_empty(), &b.name)));
        found.into_iter().map(|t| t.name.as_str()).collect()
    }

    /// The tags of the same family as `tag` (`Storage.NorthEurope` for `Storage.westeurope`)
    /// that hold `ip`.
    pub fn family_of<'a>(&'a self, tag: &str, ip: IpAddr) -> Vec<&'a str> {
        let family = tag.split('.').next().unwrap_or(tag);
        self.tags_of(ip)
            .into_iter()
            .filter(|t| {
                let f = t.split('.').next().unwrap_or(t);
                f.eq_ignore_ascii_case(family)
            })
            .collect()
    }
}

/// A serde message without the echo of a huge input.
fn short(msg: &str) -> String {
    msg.chars().take(200).collect()
}

/// A small file of the download's shape, for tests elsewhere in the crate.
#[cfg(test)]
pub fn tests_fixture() -> &'static str {
    tests::DOWNLOAD
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The download's shape (numeric change numbers, `regionId`, `platform`), cut from
    /// ServiceTags_Public_20251106.json's own entries (shared with tests/azure_files.rs).
    pub const DOWNLOAD: &str =
        include_str!("../../tests/fixtures/azure/service-tags-download.json");

    /// `az network list-service-tags` (string change numbers, no regionId), as in the REST
    /// API's Service Tags - List example.
    const CLI: &str = r#"{
  "changeNumber": "63", "cloud": "Public", "id": "/subscriptions/subId/providers/Microsoft.Network/serviceTags/public",
  "name": "public", "type": "Microsoft.Network/serviceTags",
  "values": [
    { "id": "ApiManagement", "name": "ApiManagement",
      "properties": { "addressPrefixes": ["13.64.39.16/32", "40.74.146.80/31"], "changeNumber": "7",
        "region": "", "state": "GA", "systemService": "AzureApiManagement",
        "networkFeatures": ["API", "NSG", "UDR", "FW"] } }
  ]
}"#;

    #[test]
    fn reads_both_shapes() {
        let d = ServiceTags::parse(DOWNLOAD.as_bytes()).unwrap();
        assert_eq!((d.shape, d.change_number()), (Shape::Download, "375"));
        assert_eq!(
            d.tags_of("20.60.1.1".parse().unwrap()),
            ["Storage.WestEurope", "Storage"]
        );
        assert_eq!(
            d.family_of("Storage.westeurope", "20.60.17.1".parse().unwrap()),
            ["Storage.NorthEurope", "Storage"]
        );
        assert_eq!(
            d.features("storage.westeurope").unwrap(),
            ["API", "NSG", "UDR", "FW"]
        );
        assert!(
            d.features("AzureMachineLearning.WestEurope").is_none(),
            "null features"
        );
        assert!(
            d.prefixes("Storage")
                .unwrap()
                .contains("2603:1000::1".parse().unwrap())
        );
        assert!(d.prefixes("Nope").is_none());
        let c = ServiceTags::parse(CLI.as_bytes()).unwrap();
        assert_eq!((c.shape, c.change_number(), c.len()), (Shape::Cli, "63", 1));
    }

    #[test]
    fn refuses_what_is_not_a_service_tag_file() {
        for (text, words) in [
            ("[]", "not a service-tag file"),
            ("{\"values\": []}", "changeNumber"),
            ("{\"changeNumber\": 1}", "values"),
            (
                "{\"changeNumber\": 1, \"values\": [{\"name\": \"A\", \"properties\": {\"addressPrefixes\": []}}]}",
                "regionId",
            ),
            (
                "{\"changeNumber\": \"1\", \"values\": [{\"name\": \"A\", \"properties\": {\"addressPrefixes\": [\"1.2.3.4/99\"]}}]}",
                "values[0] (A): addressPrefixes",
            ),
            (
                "{\"changeNumber\": \"1\", \"values\": [{\"properties\": {}}]}",
                "no `name`",
            ),
            ("{\"changeNumber\": 1, \"values\": [", "line 1"),
        ] {
            let e = ServiceTags::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(words), "{text}: {e}");
        }
    }

    /// The real weekly file (4 MB, 3,039 tags) from the shared data folder.
    #[test]
    fn loads_the_real_public_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/ServiceTags_Public_20251106.json");
        let path = if path.exists() {
            path
        } else {
            std::path::PathBuf::from("/work/shared/data/ServiceTags_Public_20251106.json")
        };
        let bytes = std::fs::read(&path).expect("the real service-tag file");
        let t = ServiceTags::parse(&bytes).unwrap();
        assert_eq!(
            (t.shape, t.change_number(), t.len()),
            (Shape::Download, "375", 3039)
        );
        assert_eq!(
            t.features("AzureMachineLearning").unwrap(),
            ["API", "NSG", "UDR", "FW"]
        );
        assert_eq!(
            t.features("BatchNodeManagement.WestEurope").unwrap(),
            ["API", "NSG"]
        );
        assert!(t.features("AzureMachineLearning.WestEurope").is_none());
        // An address of Storage.WestEurope carries the regional tag and its global parent.
        let first = t.prefixes("Storage.WestEurope").unwrap().ranges()[0];
        let ip: IpAddr = std::net::Ipv4Addr::from(first.first as u32).into();
        let tags = t.tags_of(ip);
        assert!(
            tags.contains(&"Storage.WestEurope") && tags.contains(&"Storage"),
            "{tags:?}"
        );
        assert!(t.tags_of("10.0.0.1".parse().unwrap()).is_empty());
    }
}
