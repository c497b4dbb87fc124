//! vnetprobe: proves from inside an Azure virtual network that every path Azure Machine
//! Learning needs works, and explains each failure by its fix.
//!
//! Data flows one way: context + catalog -> targets -> runner -> probes (through net) ->
//! outcomes -> report -> renderers.
//!
//! # Contracts (DESIGN.md), and what this code adds to them
//! Nothing in DESIGN.md's contracts is renamed or removed; these are additions.
//! - JSON report: top-level `node` (host name) and `context_sources` (variable -> source);
//!   `summary.required_fail` (what decides the exit code); per result `profiles`, `service_tag`,
//!   `skip_reason`, `note` (e.g. `open|filtered`, `resolved by proxy`), `duration_ms`, `private`,
//!   `cname_chain`, `peer`, `tls` (chain, trust, earliest expiry), `http_status`, `warnings`, `why`.
//! - Error kinds: `io_error` for local OS errors that name no network cause; `internal_error` for
//!   a probe that failed inside vnetprobe (a panic): a failure on that target, never a timeout.
//! - Metrics: every per-target family also carries `required`; added families
//!   `vnetprobe_probe_skipped`, `vnetprobe_probe_error_info`, `vnetprobe_targets`,
//!   `vnetprobe_runs_total`, `vnetprobe_reloads_total`, `vnetprobe_config_last_reload_successful`.
//! - `serve`: `/healthz` answers 503 once the last report is older than a run, an interval and
//!   30 s (a stuck or dead probe loop); a probe loop that dies ends the daemon with exit code 1.
//! - CLI: `serve --web-config-file`, the `/readyz` endpoint, `probe dns --expect`, `--log-level`,
//!   `--no-discover`/`--imds-endpoint`/`--node-root` on every command that expands the catalog;
//!   environment `VNETPROBE_DISCOVER=0` and `VNETPROBE_PUBLIC_ROOTS=PEM` (replaces the built-in web
//!   PKI roots: for labs and tests).
//! - Output: text a peer chose (certificate names, reason phrases, proxy replies, DNS and IMDS
//!   values) never reaches a terminal raw: tables and logs show control characters as `\x1b`,
//!   JSON as `\u001b`, JUnit as `&#x1b;` (`printable`).

pub mod app;
pub mod catalog;
pub mod cli;
pub mod context;
pub mod input;
pub mod log;
pub mod net;
pub mod printable;
pub mod probe;
pub mod report;
pub mod runner;
pub mod serve;
pub mod settings;
