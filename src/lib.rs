//! vnetprobe: proves from inside an Azure virtual network that every path Azure Machine
//! Learning needs works, and explains each failure by its fix.
//!
//! Data flows one way: context + catalog -> targets -> runner -> probes (through net) ->
//! outcomes -> report -> renderers.
//!
//! # Layers
//! Each module imports only from the layers below its own, and the submodules of a module form no
//! cycle (the `layering` tests below read the sources and fail on an import that goes up or
//! sideways, and on a cycle):
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | 0 | `outcome`, `printable`, `input`, `address`, `settings`, `build_info`, `terminal` | the vocabulary: verdicts and error kinds, safe text, bounded file reads, hosts and URLs, settings (layered, with their origin and range) |
//! | 1 | `logging`, `azure` | the `log` facade's logger: one line per event, text, logfmt or JSON; Azure's own view from exported files (service tags, NSG rules, routes) and a flow's verdict |
//! | 2 | `net` | sockets with deadlines, proxies and NO_PROXY, TLS trust, the peer echo: explicit arguments in, results with a kind out |
//! | 3 | `context` | the deployment's variables: flags, environment, config file, discovery |
//! | 4 | `catalog`, `cli` | targets (load, expand, select) and the command line; a target's `Check` holds its protocol's settings only, and its `Host` is ready or unset with the variables it needs |
//! | 5 | `probe` | one module per protocol: a target in, evidence and a verdict out |
//! | 6 | `runner` | every target within the concurrency cap and the run's deadline |
//! | 7 | `report`, `progress`, `explain` | summaries, diagnosis, every renderer |
//! | 8 | `plan` | a run's selection and network settings, validated, and how to run it |
//! | 9 | `wait`, `serve`, `listen`, `manpage` | the long-running and derived commands |
//! | 10 | `cmd` | one module per command: arguments in, output and an exit code out |
//! | 11 | `app` | the edge: parses the command line, dispatches, turns errors into exit code 2 |
//!
//! # Contracts (DESIGN.md), and what this code adds to them
//! Nothing in DESIGN.md's contracts is renamed or removed; these are additions.
//! - JSON report: top-level `node` (host name) and `context_sources` (variable -> source);
//!   `summary.required_fail` (what decides the exit code); per result `profiles`, `service_tag`,
//!   `skip_reason`, `note` (e.g. `open|filtered`, `resolved by proxy`), `duration_ms`, `private`,
//!   `cname_chain`, `peer`, `tls` (chain, trust, earliest expiry), `http_status`, `warnings`, `why`.
//! - Truth over green (DESIGN's "Truth over green"): per result `unverified` (true on a pass the
//!   node could not confirm; `note` says what was not proven) and `direction` (`outbound`, or
//!   `inbound` for rows about traffic to the node, always `skip` with skip_reason
//!   "inbound: cannot be observed from this node" and the rule to verify as `hint`);
//!   `summary.unverified` and `summary.required_skip` (required outbound targets skipped for a
//!   missing variable: named in the table summary, never summarised as met). `--strict` (config
//!   `strict = true`) turns those into failures with the kinds `unverified` and `not_checked`.
//!   A selection of zero targets exits 2 naming the selection; a `check` in which every target
//!   was skipped prints its report and exits 2 ("nothing was checked").
//! - Diagnosis: a top-level `causes` array (`kind`, `message`, `fix`, `targets`) for failures that
//!   share one resolver, proxy, service tag, inspecting CA or traced last hop (never a single
//!   failure); per result
//!   `resolver` (the DNS server asked); hints follow the failing layer (`ErrorKind::layer`), and
//!   DNS hints never name a network rule. `check --output fix` renders the fix plan (az commands,
//!   firewall rules, zone links, forwarders, NO_PROXY).
//! - Routes: a target's `client` (`curl`, `pip`, `conda`) picks whose proxy route it takes; where
//!   curl's and Python requests' readings differ, the result carries a warning. With discovery
//!   on, `~/.bashrc` exports, `PIP_PROXY`/`pip.conf` and `.condarc` are read (bounded) and the
//!   note names the file a proxy setting came from. NO_PROXY's `*.x`, `host:port` and `[v6]`
//!   entries, which neither client honours, match nothing.
//! - `vnetprobe context` (which takes the check's network options) also shows the run's settings
//!   with their origin; `context --settings --output json` is an object keyed by setting
//!   (`{"value", "origin", "from"}`, `origin` one of
//!   `flag`, `env`, `file`, `discovery`, `default`). Every setting, not only the variables, is
//!   layered flag > `VNETPROBE_*` > config file > default by `settings::Layers` and checked by one
//!   rule whatever its source; the error names the flag, variable or `file:line: field`.
//! - Error kinds: `io_error` for local OS errors that name no network cause; `unverified` and
//!   `not_checked` (only with `--strict`).
//! - Variables: `exfil_url` (the object the exfiltration check requests; replaces
//!   `other_storage_account`, which is now refused with a pointer to it) and `private_endpoints`
//!   (the services whose names must resolve privately, default `workspace,keyvault,acr`). Every
//!   variable is checked by one rule whatever its source (flag, `VNETPROBE_*`, config file,
//!   discovery). A catalog target may set its own `timeout` (at most 300 s) for a rare slow
//!   path: its probe cap and the run's deadline grow with it. The catalog's `required` may list clouds, DNS rows name their service with
//!   `private_endpoint`, inbound rows say `direction = "inbound"`; there is no `sovereign` profile.
//!   Inbound rows' hints are Network Watcher commands filled from the context variables
//!   `subscription`, `resource_group`, `vm_name`, `private_ip` (IMDS, asked when the region is
//!   unknown or the `public-ip` profile is selected).
//! - Peer error kinds: `peer_no_echo` (a
//!   peer's port answered, but not with the echo of `vnetprobe listen`) and
//!   `peer_not_authenticated` (an echo that the shared `--key-file` does not verify: another key,
//!   no key on one side, or a forged reply).
//! - Peer checks: per result `responder` (`node`, `authenticated`) when a `vnetprobe listen`
//!   echo confirmed the path; `merge --output json` adds `peers` (`nodes`, and `paths` with
//!   `from`, `to`, `host`, `protocol`, `port`, `status`, `kind`, `authenticated`) and the table a
//!   node-by-node matrix (summarised past 16 nodes). `merge` also adds `groups` (`signature`,
//!   `nodes`, `aligned`: nodes by failing required targets, lined up with subnet, zone, VM
//!   size), `warnings` (duplicate nodes, mixed versions or catalogs), per node `facts` and
//!   `signature`; `merge --nodes` adds the node table. Reports add `vnetprobe_version`,
//!   `catalog_digest` and the context variables `subnet`, `vm_size`, `zone` (IMDS; asked with
//!   `check --output json`) and `k8s_node` (`VNETPROBE_K8S_NODE`). The `peer` profile and the `{peer}` variable (`--set peer=HOST`, which
//!   adds the profile); the catalog key `responder = true` on tcp and udp targets.
//! - Internal error kind: `internal_error` for
//!   a probe that failed inside vnetprobe (a panic): a failure on that target, never a timeout.
//! - Metrics: every per-target family also carries `required`; added families
//!   `vnetprobe_probe_skipped`, `vnetprobe_probe_unverified`, `vnetprobe_probe_error_info`, `vnetprobe_targets`,
//!   `vnetprobe_runs_total`, `vnetprobe_reloads_total`, `vnetprobe_config_last_reload_successful`.
//! - `serve`: `/healthz` answers 503 once the last report is older than a run, an interval and
//!   30 s (a stuck or dead probe loop); a probe loop that dies ends the daemon with exit code 1.
//! - Operator's tools: `explain [KIND]` (meaning, detection and fix of every error kind; the
//!   fix is the kind's remedy), `man [SUBCOMMAND] | man --dir DIR` (vnetprobe(1) and one
//!   vnetprobe-SUBCOMMAND(1) page each, with EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES),
//!   `--version` (version, commit, target, static, rustc; `vnetprobe_build_info` carries the same
//!   as labels `version`, `revision`, `target`, `static`, `rustc_version`), `--log-format
//!   text|logfmt|json`. Every `--help` ends with examples and wraps at the terminal width.
//! - `check --wait DUR` re-runs failing targets with backoff (1 s doubling to 15 s) until they
//!   pass or DUR is over; each result then carries `wait: {attempts, reachable_after_ms}`.
//!   `check` draws a live progress line on stderr when it is a terminal and the output is the
//!   table (`--quiet` turns it off). The table fits the terminal (or `COLUMNS`, or 100 columns);
//!   a skipped target's host shows a missing variable as `<name>`, never as `{name}`, and its
//!   reason names it in words. `probe`'s table adds the evidence (addresses, peer, certificate,
//!   HTTP status, phases).
//! - `serve`: `/metrics` is gzip-encoded when the scraper accepts it (compressed once per run;
//!   the per-scrape `process_*` families, `process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//!   `process_max_fds`, `process_start_time_seconds`, are appended as a stored block); `/` is
//!   a self-contained HTML status page of the last run (summary, causes by error kind, targets
//!   coloured by status), reloading every interval; one start-up line at the default level
//!   (address, interval, targets, web config, TLS, Basic auth).
//! - CLI: `serve --web-config-file`, the `/readyz` endpoint, `probe dns --expect`, `--log-level`,
//!   `--no-discover`/`--imds-endpoint`/`--node-root` on every command that expands the catalog;
//!   environment `VNETPROBE_DISCOVER=0` and `VNETPROBE_PUBLIC_ROOTS=PEM` (replaces the built-in web
//!   PKI roots: for labs and tests).
//! - CLI: `listen --tcp PORTS --udp PORTS [--key-file F] [--for DUR | --forever] [--rate N]
//!   [--address IP] [--config F]` (the responder; exit 0 at its deadline or on SIGTERM/SIGINT, 2
//!   for bad ports, key file or a port it cannot bind), `check --peer HOST:tcp/PORT,udp/PORT`
//!   (repeatable) and `--key-file F` (check, probe, serve); config table `[listen]` (`tcp`, `udp`,
//!   `key-file`, `for`, `forever`, `rate`, `address`). The echo's wire format is in `net::echo`.
//! - `merge` reads protocols, expectations and error kinds as the closed vocabularies they are: a
//!   report with a label this binary does not know is refused (exit 2, naming the file and line),
//!   so merge with a binary at least as new as the newest node's.
//! - Azure's own view (`check`/`probe`/`serve` `--service-tags FILE`, `--nsg FILE` (repeatable),
//!   `--routes FILE`; config keys `service-tags`, `nsg = [...]`, `routes`): per result
//!   `address_tags` (address -> service tags), `rules` (`nsg`, `rule`, `priority`, `access`
//!   Allow|Deny|unknown, `reason`, `evaluated`), `route` (`prefix`, `next_hop_type`, `next_hop`,
//!   `source`, `name`); context keys `service_tags_file`, `service_tags_change_number`,
//!   `nsg_files`, `routes_file`, `vnet_prefixes` (what `VirtualNetwork` stands for, with NSG
//!   files). Error kinds `nsg_denied`, `route_not_internet`, and the cause kind `forced_tunnel`.
//!   Inbound rows evaluated against the files: deny = fail, allow = pass with `unverified`.
//!   `--vnet-prefix PREFIX` (repeatable; config `vnet-prefix = [...]`) gives the VNet's prefixes,
//!   over the route file's `VnetLocal` routes and an effective file's `tagMap`. A target whose
//!   public address is outside its declared `service_tag` gets a warning naming the tags holding
//!   the address (the hint's lead when it fails; never a verdict of its own). With
//!   `--service-tags`, `--output fix` ends with one shell variable per failing target's tag
//!   (`PREFIXES_<tag>`, `.` and other non-alphanumerics as `_`) and `PREFIXES_ALL`, aggregated
//!   CIDR blocks, under a `#` comment with the file's change number.
//! - Behind an application-layer firewall (Azure Firewall, which completes the TCP handshake
//!   itself on 80, 443 and 1433): a `tcp` target on those ports, or on one named by
//!   `--app-rule-port PORT` (repeatable, comma lists; config `app-rule-ports = [8443]`), passes on
//!   the connect alone only as `unverified` (and one expected blocked passes as `unverified`
//!   instead of failing: the connect was maybe the firewall's). Error kinds `firewall_denied` (an
//!   HTTP answer with status 470 and `Action: Deny` in its body, read to at most 4 KiB) and
//!   `tls_reset_after_hello` (TCP up, then closed or reset before the server sent one byte after
//!   the ClientHello); both are `ErrorKind::layer` `AppRule`, whose hints name an application
//!   rule (FQDN, `Https:443`/`Http:80`), never an NSG rule. A reset on a direct path to a name is
//!   confirmed once per FQDN and run with `GET http://FQDN/` on port 80 of the same address; per
//!   result `firewall` (`deny`: the firewall's words, cleaned and capped; `seen_on`: the request
//!   that got the 470; `no_rule_matched`). Several FQDNs so denied are one cause ("N FQDNs denied
//!   by an application-rule firewall"). The fix plan writes Firewall Policy rules
//!   (`az network firewall policy rule-collection-group collection add-filter-collection`),
//!   service tags only where Azure's `networkFeatures` allow them (`azure::features`; the file of
//!   `--service-tags` decides when given), next-hop-Internet routes for `AzureMachineLearning` and
//!   `BatchNodeManagement` for public-IP compute behind a firewall, every value single-quoted and
//!   every other line a comment. Catalog key `required_with_private_endpoint = "SERVICE"`: the
//!   target is required only where `private_endpoints` lists the service (the 8787/18881 rows).
//!   Catalog ids renamed with their protocol (a TLS handshake now, not a TCP connect):
//!   `storage-{blob,queue,table}-tcp` -> `storage-{blob,queue,table}-tls`, `storage-file-https`
//!   -> `storage-file-tls`, `batch-account-tcp` -> `batch-account-tls`, `pe-workspace-api-tcp` ->
//!   `pe-workspace-api-tls`, `aml-instance-{net,mlazure}-tcp` -> `aml-instance-{net,mlazure}-tls`;
//!   `entra-login-http` is an HTTP GET on 80; `aml-instance-tcp` keeps 8787/18881 only and is not
//!   required.
//! - Path tracing (`probe trace tcp|udp HOST:PORT [--max-ttl N]`, `check --trace`): per result
//!   `trace` (`protocol` `tcp`|`udp`, `to` address:port, `probed_ttl` the highest TTL sent,
//!   `hops` the answered probes, each `ttl`, `address`, `rtt_ms`, `kind`
//!   `time_exceeded`|`unreachable`|`reply`, `icmp_type`, `icmp_code`, `meaning`; `ended`, `at`
//!   the hop it ended at (null when none answered), `duration_ms`, `summary` the table's line).
//!   `ended` is `destination` (the address itself answered: SYN-ACK, reset, UDP reply, or its
//!   port unreachable), `rejected` (ICMP unreachable from a hop), `silent_after_hop` (hops
//!   answered up to `at`, then none), `no_hop_answered`, `local_firewall` (this host refused to
//!   send: EPERM). `check --trace` traces failing direct `tcp_timeout` and `tls_reset_after_hello` targets and UDP targets
//!   passed unverified (silence), one trace per address, protocol and port, at most 64 (the
//!   rest get a warning), within one more `--timeout`; a traced `tcp_timeout`'s hint then says
//!   where the trail ended, and failing paths whose traces stop after (or are rejected by) one hop share a `causes`
//!   entry naming it (and the `--routes` route whose next hop it is).
//! - Output: text a peer chose (certificate names, reason phrases, proxy replies, DNS and IMDS
//!   values) never reaches a terminal raw: tables and logs show control characters as `\x1b`,
//!   JSON as `\u001b`, JUnit as `&#x1b;` (`printable`).

pub mod address;
pub mod app;
pub mod azure;
pub mod build_info;
pub mod catalog;
pub mod cli;
pub mod cmd;
pub mod context;
pub mod explain;
pub mod input;
pub mod listen;
pub mod logging;
pub mod manpage;
pub mod net;
pub mod outcome;
pub mod plan;
pub mod printable;
pub mod probe;
pub mod progress;
pub mod report;
pub mod runner;
pub mod serve;
pub mod settings;
pub mod terminal;
pub mod wait;

#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Lowest first; see the table in the crate docs.
    const LAYERS: &[&[&str]] = &[
        &[
            "outcome",
            "printable",
            "input",
            "address",
            "settings",
            "build_info",
            "terminal",
        ],
        &["logging", "azure"],
        &["net"],
        &["context"],
        &["catalog", "cli"],
        &["probe"],
        &["runner"],
        &["report", "progress", "explain"],
        &["plan"],
        &["wait", "serve", "listen", "manpage"],
        &["cmd"],
        &["app"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    /// A source without its test code, which ends every file from its `#[cfg(test)]` on.
    fn code(text: &str) -> &str {
        text.split("#[cfg(test)]").next().unwrap_or_default()
    }

    /// The identifier at the start of `s`.
    fn ident(s: &str) -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }

    /// The top-level modules a source's code names through `crate::`.
    fn imports(text: &str) -> BTreeSet<String> {
        let text = code(text);
        let mut out = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::b, c}`: the first segment of each item, nested groups skipped.
                let (mut depth, mut item_start, mut items) = (0, true, Vec::new());
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && !c.is_whitespace() => {
                            items.push(ident(&group[j..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
                out.extend(items);
            } else {
                out.insert(ident(rest));
            }
        }
        out.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_lowercase()));
        out
    }

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_import_goes_down_a_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        let mut seen = 0;
        for file in &files {
            let rel = file.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = top.trim_end_matches(".rs");
            if matches!(top, "lib" | "main") || rel.ends_with("tests.rs") {
                continue;
            }
            let Some(own) = layer(top) else {
                wrong.push(format!("{}: module {top} is in no layer", rel.display()));
                continue;
            };
            for used in imports(&std::fs::read_to_string(file).unwrap()) {
                seen += 1;
                match layer(&used) {
                    _ if used == top => {}
                    Some(l) if l < own => {}
                    Some(l) => wrong.push(format!(
                        "{}: {top} (layer {own}) imports {used} (layer {l})",
                        rel.display()
                    )),
                    None => wrong.push(format!("{}: imports {used}, in no layer", rel.display())),
                }
            }
        }
        assert!(
            seen > 100,
            "only {seen} imports found: is the parser blind?"
        );
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The sibling modules a submodule of `top` names: `super::x`, `super::{x, y}` and
    /// `crate::top::x` (filtered to real siblings by the caller).
    fn siblings(text: &str, top: &str) -> BTreeSet<String> {
        let text = code(text);
        let mut out = BTreeSet::new();
        let through_crate = format!("crate::{top}::");
        let paths = text
            .match_indices("super::")
            .map(|(i, m)| &text[i + m.len()..]);
        let paths = paths.chain(
            text.match_indices(&through_crate)
                .map(|(i, m)| &text[i + m.len()..]),
        );
        for rest in paths {
            match rest.strip_prefix('{') {
                Some(group) => {
                    let group = group.split('}').next().unwrap_or_default();
                    out.extend(group.split(',').map(ident));
                }
                None => {
                    out.insert(ident(rest));
                }
            }
        }
        out
    }

    #[test]
    fn sibling_modules_form_no_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for dir in std::fs::read_dir(&src).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let top = dir.file_name().unwrap().to_string_lossy().into_owned();
            let children: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    let name = name.strip_suffix(".rs").unwrap_or(&name).to_string();
                    (name != "mod" && name != "tests").then_some(name)
                })
                .collect();
            let edges: Vec<(String, BTreeSet<String>)> = children
                .iter()
                .filter_map(|c| {
                    let text = std::fs::read_to_string(dir.join(format!("{c}.rs"))).ok()?;
                    let mut used = siblings(&text, &top);
                    used.retain(|u| u != c && children.contains(u));
                    Some((c.clone(), used))
                })
                .collect();
            // Depth-first search for a path that returns to where it started.
            fn visit(
                node: &str,
                edges: &[(String, BTreeSet<String>)],
                path: &mut Vec<String>,
                done: &mut BTreeSet<String>,
            ) -> Option<Vec<String>> {
                if let Some(i) = path.iter().position(|p| p == node) {
                    return Some(path[i..].to_vec());
                }
                if !done.insert(node.to_string()) {
                    return None;
                }
                path.push(node.to_string());
                let next = edges.iter().find(|(c, _)| c == node).map(|(_, u)| u);
                for n in next.into_iter().flatten() {
                    if let Some(cycle) = visit(n, edges, path, done) {
                        return Some(cycle);
                    }
                }
                path.pop();
                None
            }
            for (child, _) in &edges {
                let cycle = visit(child, &edges, &mut Vec::new(), &mut BTreeSet::new());
                assert!(cycle.is_none(), "src/{top}: a cycle {cycle:?}");
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} submodules checked");
    }

    #[test]
    fn the_sibling_reader_sees_super_and_crate_paths() {
        let found = siblings(
            "use super::{Evidence, route};\nlet t = super::tls::handshake();\ncrate::probe::dns::x();",
            "probe",
        );
        assert!(
            ["route", "tls", "dns"].iter().all(|m| found.contains(*m)),
            "{found:?}"
        );
    }

    #[test]
    fn the_import_reader_sees_groups_and_paths() {
        let found = imports(
            "use crate::{net::{self, dial}, probe::Evidence};\nlet x = crate::report::render(y);\n#[cfg(test)]\nuse crate::app;",
        );
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            ["net", "probe", "report"]
        );
    }
}
