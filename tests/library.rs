//! The library driven directly, as the binary drives it: catalog -> context -> runner -> report,
//! against a real dnsmasq and a loopback listener.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use vnetprobe::catalog::Catalog;
use vnetprobe::context::{ConfigFile, Context};
use vnetprobe::net::NetConfig;
use vnetprobe::probe::dns::DnsCache;
use vnetprobe::probe::{ErrorKind, ProbeEnv, Status};
use vnetprobe::runner::{self, Limits};

#[test]
fn runner_shares_one_lookup_per_name_and_keeps_target_order() {
    let dns = Dnsmasq::start("local=/test/\nhost-record=svc.test,127.0.0.1\n");
    let l = Listener::start();
    let closed = free_port();
    let text = format!(
        "[[target]]\nid = \"a\"\nname = \"a\"\nprotocol = \"tcp\"\nhost = \"svc.test\"\nports = [{}, {closed}]\n\
         profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n\n\
         [[target]]\nid = \"b\"\nname = \"b\"\nprotocol = \"dns\"\nhost = \"svc.test\"\nprofiles = [\"internet\"]\n\
         expect = \"private\"\nwhy = \"w\"\nfix = \"f\"\n\n\
         [[target]]\nid = \"c\"\nname = \"c\"\nprotocol = \"dns\"\nhost = \"gone.test\"\nprofiles = [\"internet\"]\n\
         why = \"w\"\nfix = \"f\"\n",
        l.port
    );
    let catalog = Catalog::from_sources([("mem.toml".to_string(), text)]).unwrap();
    let ctx = Context::build(None, &[], &Default::default(), &ConfigFile::default()).unwrap();
    let targets = catalog.expand(&ctx, &[], None);
    assert_eq!(targets.len(), 4);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = Arc::new(ProbeEnv::new(
        DnsCache::new(Some(dns.addr), Duration::from_secs(1)).unwrap(),
        Duration::from_secs(1),
        NetConfig::default(),
    ));
    let limits = Limits {
        concurrency: 8,
        timeout: Duration::from_secs(1),
    };
    let shared = targets.into_iter().map(std::sync::Arc::new).collect();
    let finished = rt.block_on(runner::run(shared, env.clone(), limits));

    assert_eq!(
        env.dns.lookups(),
        2,
        "svc.test once for three targets, gone.test once"
    );
    let got: Vec<(&str, Status, Option<ErrorKind>)> = finished
        .iter()
        .map(|f| {
            (
                f.target.id.as_str(),
                f.outcome.status,
                f.outcome.error.as_ref().map(|e| e.kind),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", Status::Pass, None),
            ("a", Status::Fail, Some(ErrorKind::TcpRefused)),
            ("b", Status::Pass, None),
            ("c", Status::Fail, Some(ErrorKind::DnsNxdomain)),
        ]
    );
    assert_eq!(
        finished[0].outcome.evidence.private,
        Some(true),
        "loopback counts as private"
    );
}
