use super::*;

#[test]
fn endpoints_are_shortened_in_the_middle_keeping_the_port() {
    let ep = "ci1.westeurope.instances.azureml.ms:8787";
    assert_eq!(fit_endpoint(ep, 60), ep);
    let short = fit_endpoint(ep, 24);
    assert_eq!(len(&short), 24, "{short}");
    assert!(
        short.starts_with("ci1.") && short.ends_with("ml.ms:8787"),
        "{short}"
    );
    assert_eq!(len(&fit_endpoint("[::1]:443", 6)), 6);
    assert_eq!(
        len(&fit_endpoint("a-very-long-dns-only-name.example", 12)),
        12
    );
}

fn report() -> Report {
    let long_fix = "Allow outbound TCP 18881 to the AzureMachineLearning service tag in the NSG and firewall; rules that allow only 443 to Azure ML break IntelliSense.";
    serde_json::from_value(serde_json::json!({
        "version": 1, "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1500,
        "context": {"cloud": "public", "region": "westeurope"},
        "summary": {"pass": 2, "fail": 1, "skip": 2, "required_fail": 1, "required_skip": 1},
        "results": [
            {"id": "aml-instance-tls-intellisense", "name": "n", "protocol": "tls",
             "host": "computeinstance-with-a-long-name.westeurope.instances.azureml.ms", "port": 18881,
             "profiles": ["no-public-ip"], "required": true, "expect": "reachable", "status": "fail",
             "error": {"kind": "tcp_timeout", "message": "10.0.2.4:18881: no answer within 2000 ms, the SYN was dropped by something on the path"},
             "duration_ms": 2000.0, "hint": long_fix},
            {"id": "monitor-appinsights-microsoft-tls", "name": "n", "protocol": "tls",
             "host": "dc.applicationinsights.microsoft.com", "port": 443, "profiles": ["internet"],
             "required": false, "expect": "reachable", "status": "pass", "duration_ms": 38.0,
             "note": "direct", "unverified": false},
            {"id": "aml-tundra-udp", "name": "n", "protocol": "udp",
             "host": "westeurope.tundra.azureml.ms", "port": 5831, "profiles": ["internet"],
             "required": true, "expect": "reachable", "status": "pass", "unverified": true,
             "duration_ms": 2000.0,
             "note": "direct; open|filtered: no reply and no rejection within 2000 ms; unverified: silence is all a node sees of an open UDP port and of an NSG or firewall drop alike"},
            {"id": "aml-instance-ws", "name": "n", "protocol": "ws",
             "host": "<instance>.westeurope.instances.azureml.ms", "port": 443, "profiles": ["no-public-ip"],
             "required": true, "expect": "reachable", "status": "skip",
             "skip_reason": "needs instance: set --set instance=VALUE (or VNETPROBE_INSTANCE)"},
            {"id": "inbound-aml-44224", "name": "n", "protocol": "tcp", "host": "vm", "port": 44224,
             "profiles": ["public-ip"], "required": true, "expect": "reachable", "status": "skip",
             "direction": "inbound", "skip_reason": "inbound: cannot be observed from this node",
             "hint": "Verify an inbound NSG rule allowing TCP 44224 from the AzureMachineLearning service tag to the compute subnet (az network watcher test-ip-flow --direction Inbound --protocol TCP --local NODE_IP:44224 --remote AML_ADDRESS:PORT --vm VM --resource-group RG)."}
        ]
    }))
    .expect("a valid report")
}

#[test]
fn the_table_fits_80_and_100_columns() {
    let r = report();
    for width in [80, 100] {
        let text = render(&r, false, width);
        for line in text.lines() {
            assert!(
                len(line) <= width,
                "{width}: {} columns: {line:?}\n{text}",
                len(line)
            );
        }
        assert!(!text.contains('{'), "no raw template: {text}");
        // The shortened endpoint keeps its port; the detail and the fix wrap under the row.
        assert!(text.contains(":18881  tls"), "{text}");
        assert!(
            text.contains("\n          tcp_timeout: 10.0.2.4:18881"),
            "{text}"
        );
        assert!(
            text.contains("\n          fix: Allow outbound TCP 18881"),
            "{text}"
        );
        assert!(
            text.contains("\n          verify: Verify an inbound"),
            "{text}"
        );
        assert!(
            text.contains("break IntelliSense."),
            "the whole fix is there: {text}"
        );
        assert!(text.contains("  <instance>"), "{text}");
    }
    // A short detail stays on its row when there is room.
    let wide = render(&r, false, 160);
    assert!(
        wide.lines()
            .any(|l| l.contains("monitor-appinsights-microsoft-tls") && l.ends_with("direct")),
        "{wide}"
    );
}

#[test]
fn a_probe_shows_its_evidence() {
    let mut r = report();
    r.results.truncate(2);
    r.results.remove(0);
    let one = &mut r.results[0];
    one.addresses = vec!["20.1.2.3".into()];
    one.private = Some(false);
    one.peer = Some("20.1.2.3:443".into());
    one.http_status = Some(200);
    one.tls = Some(crate::outcome::TlsEvidence {
        version: Some("TLSv1.3".into()),
        chain: vec![crate::outcome::CertInfo {
            subject: "CN=*.applicationinsights.microsoft.com".into(),
            issuer: "CN=Microsoft Azure RSA TLS Issuing CA 03".into(),
            not_after: 4_102_444_800,
            sans: vec!["dc.applicationinsights.microsoft.com".into()],
        }],
        trusted_by: "public".into(),
        earliest_expiry: Some(4_102_444_800),
    });
    let text = render_probe(&r, false, 80);
    for want in [
        "vnetprobe probe",
        "addresses  20.1.2.3 (public)",
        "peer       20.1.2.3:443 (direct)",
        "tls        TLSv1.3, trusted by public",
        "subject    CN=*.applicationinsights.microsoft.com",
        "issuer     CN=Microsoft Azure RSA TLS Issuing CA 03",
        "expires    2100-01-01T00:00:00Z (in ",
        "http       200",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    assert!(text.find("evidence").unwrap() < text.find("summary:").unwrap());
}

#[test]
fn wrap_cuts_words_longer_than_the_line() {
    assert_eq!(wrap("aaaa bbbb cc", 10), ["aaaa bbbb", "cc"]);
    assert_eq!(wrap(&"x".repeat(25), 10).len(), 3);
}
