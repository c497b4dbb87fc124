//! The fix plan's IP lists (`check --output fix` with `--service-tags`): for an IP-based firewall
//! (not Azure Firewall) or an on-premises proxy, which take addresses, not service tags. One
//! shell variable per service tag the failing targets declare, its prefixes from the file merged
//! into the fewest CIDR blocks (IPv4, then IPv6), and one with all of them, deduplicated across
//! tags (a regional tag inside its global parent counts once). The file's change number is in a
//! comment: the addresses change weekly. The section is valid shell: comments start with `#`,
//! with control characters escaped, and the values are prefixes this code wrote.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Report, ResultEntry};
use crate::azure::{PrefixSet, ServiceTags};
use crate::outcome::{Layer, Status};
use crate::printable::printable;

/// The tags of the failing targets (not the DNS failures: no IP rule fixes those), spelt as the
/// file spells them, each with its aggregated prefixes; a tag the file lacks maps to nothing.
pub fn failing_tags(results: &[ResultEntry], tags: &ServiceTags) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for r in results.iter().filter(|r| r.status == Status::Fail) {
        let (Some(tag), Some(e)) = (&r.service_tag, &r.error) else {
            continue;
        };
        if e.kind.layer() == Layer::Dns {
            continue;
        }
        match tags.tag(tag) {
            Some(t) => out
                .entry(t.name.clone())
                .or_insert_with(|| t.prefixes.cidrs()),
            None => out.entry(tag.clone()).or_default(),
        };
    }
    out
}

/// A shell variable name for a tag: `PREFIXES_Storage_WestEurope`.
fn variable(tag: &str) -> String {
    let name: String = tag
        .chars()
        .take(100)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("PREFIXES_{name}")
}

/// The failing targets that declare `tag`, as the plan's other `# fixes:` lines name them.
fn fixes(report: &Report, tag: &str) -> String {
    let mut ids: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .filter(|r| {
            r.service_tag
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(tag))
        })
        .map(|r| match r.port {
            Some(p) => format!("{}:{p}", r.id),
            None => r.id.clone(),
        })
        .collect();
    ids.sort();
    ids.dedup();
    printable(&ids.join(", ")).into_owned()
}

/// The section; empty without a service-tag file or when no failing target declares a tag.
pub fn section(report: &Report) -> String {
    let mut out = String::new();
    if report.tag_prefixes.is_empty() {
        return out;
    }
    let file = report
        .context
        .get("service_tags_file")
        .map_or("", String::as_str);
    let change = report
        .context
        .get("service_tags_change_number")
        .map_or("", String::as_str);
    let _ = writeln!(
        out,
        "\n## IP prefixes for an IP-based firewall or on-premises proxy (allow outbound to these when rules cannot \
         name service tags)\n\
         # From {} (change number {}): the addresses change weekly; export them again from a newer file before \
         applying.",
        printable(file),
        printable(change)
    );
    let mut all = PrefixSet::default();
    for (tag, cidrs) in &report.tag_prefixes {
        let shown = printable(tag);
        if cidrs.is_empty() {
            let _ = writeln!(
                out,
                "# {shown}: not in the service-tag file (fixes: {})",
                fixes(report, tag)
            );
            continue;
        }
        let set = PrefixSet::parse(cidrs.iter().map(String::as_str)).unwrap_or_default();
        let v6 = cidrs.iter().filter(|c| c.contains(':')).count();
        let _ = writeln!(
            out,
            "# {shown}: {} CIDR blocks ({} IPv4, {v6} IPv6), aggregated; fixes: {}\n{}='{}'",
            cidrs.len(),
            cidrs.len() - v6,
            fixes(report, tag),
            variable(tag),
            cidrs.join(" ")
        );
        all = all.union(&set);
    }
    if report
        .tag_prefixes
        .values()
        .filter(|c| !c.is_empty())
        .count()
        > 1
    {
        let cidrs = all.cidrs();
        let _ = writeln!(
            out,
            "# All of the above, deduplicated across tags: {} CIDR blocks\nPREFIXES_ALL='{}'",
            cidrs.len(),
            cidrs.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::AzureData;
    use crate::outcome::ErrorKind;
    use std::time::{Duration, SystemTime};

    /// Failing targets declaring these tags (a DNS failure among them), annotated with `file`.
    fn annotated(file: &str, failing: &[(&str, ErrorKind)]) -> Report {
        let finished = failing
            .iter()
            .map(|(_, k)| super::super::tests::finished(Some(*k), true))
            .collect();
        let mut report = Report::new(
            Default::default(),
            SystemTime::now(),
            Duration::ZERO,
            finished,
            false,
        );
        for (i, (r, (tag, _))) in report.results.iter_mut().zip(failing).enumerate() {
            r.id = format!("t{i}");
            r.service_tag = Some(tag.to_string());
        }
        let azure = AzureData {
            tags: Some(ServiceTags::parse(file.as_bytes()).unwrap()),
            tags_file: Some("/data/tags\n1.json".into()),
            ..Default::default()
        };
        super::super::azure::annotate(&mut report, &azure, &|_| None, false);
        report
    }

    fn bash_n(text: &str) {
        use std::io::Write as _;
        let mut child = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bash -n: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn per_tag_aggregated_deduplicated_with_the_change_number() {
        let text = super::super::fix::render(&annotated(
            crate::azure::service_tags::tests_fixture(),
            &[
                ("Storage.westeurope", ErrorKind::TcpTimeout),
                ("Storage", ErrorKind::TcpRefused),
                ("AzureMachineLearning", ErrorKind::UdpRejected),
                ("Nope", ErrorKind::TcpTimeout),
                ("AzureMachineLearning.WestEurope", ErrorKind::DnsNxdomain),
            ],
        ));
        bash_n(&text);
        let section = &text[text.find("## IP prefixes").expect(&text)..];
        assert!(
            section.contains(
                "# From /data/tags\\x0a1.json (change number 375): the addresses change weekly"
            ),
            "{section}"
        );
        assert!(
            section.contains("\nPREFIXES_Storage_WestEurope='20.60.0.0/20'\n"),
            "the file's spelling: {section}"
        );
        assert!(section.contains(
            "# Storage.WestEurope: 1 CIDR blocks (1 IPv4, 0 IPv6), aggregated; fixes: t0:443"
        ));
        // Storage's 20.38.96.0/19 and 20.60.0.0/16, and its IPv6 block, after the IPv4 ones.
        assert!(
            section.contains("\nPREFIXES_Storage='20.38.96.0/19 20.60.0.0/16 2603:1000::/40'\n"),
            "{section}"
        );
        assert!(section.contains("# Nope: not in the service-tag file (fixes: t3:443)"));
        // Storage.WestEurope is inside Storage: counted once.
        assert!(
            section.contains(
                "\nPREFIXES_ALL='20.38.96.0/19 20.60.0.0/16 20.61.0.0/24 2603:1000::/40'\n"
            ),
            "{section}"
        );
        assert!(
            !section.contains("AzureMachineLearning.WestEurope"),
            "a DNS failure: {section}"
        );
    }

    #[test]
    fn a_hostile_file_cannot_break_out_of_a_comment() {
        let hostile = r#"{"changeNumber": "7\nrm -rf /\n", "values": [
          {"name": "Bad\nrm -rf ~", "properties": {"addressPrefixes": ["198.51.100.0/24"]}}]}"#;
        // The section alone: the rest of the plan quotes the catalog's spelling, not the file's.
        let text = section(&annotated(
            hostile,
            &[("bad\nrm -rf ~", ErrorKind::TcpTimeout)],
        ));
        bash_n(&text);
        for line in text.lines() {
            assert!(
                line.is_empty() || line.starts_with('#') || line.starts_with("PREFIXES_"),
                "{line:?} in:\n{text}"
            );
        }
        assert!(
            text.contains("PREFIXES_Bad_rm__rf__='198.51.100.0/24'"),
            "{text}"
        );
    }
}
