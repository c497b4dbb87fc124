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
//! - Error kinds: `io_error` for local OS errors that name no network cause; `peer_no_echo` (a
//!   peer's port answered, but not with the echo of `vnetprobe listen`) and
//!   `peer_not_authenticated` (an echo that the shared `--key-file` does not verify: another key,
//!   no key on one side, or a forged reply).
//! - Peer checks: per result `responder` (`node`, `authenticated`) when a `vnetprobe listen`
//!   echo confirmed the path; `merge --output json` adds `peers` (`nodes`, and `paths` with
//!   `from`, `to`, `host`, `protocol`, `port`, `status`, `kind`, `authenticated`) and the table a
//!   node-by-node matrix. The `peer` profile and the `{peer}` variable (`--set peer=HOST`, which
//!   adds the profile); the catalog key `responder = true` on tcp and udp targets.
//! - Metrics: every per-target family also carries `required`; added families
//!   `vnetprobe_probe_skipped`, `vnetprobe_probe_error_info`, `vnetprobe_targets`,
//!   `vnetprobe_runs_total`, `vnetprobe_reloads_total`, `vnetprobe_config_last_reload_successful`.
//! - CLI: `serve --web-config-file`, the `/readyz` endpoint, `probe dns --expect`, `--log-level`,
//!   `--no-discover`/`--imds-endpoint`/`--node-root` on every command that expands the catalog;
//!   environment `VNETPROBE_DISCOVER=0` and `VNETPROBE_PUBLIC_ROOTS=PEM` (replaces the built-in web
//!   PKI roots: for labs and tests).
//! - CLI: `listen --tcp PORTS --udp PORTS [--key-file F] [--for DUR | --forever] [--rate N]
//!   [--address IP] [--config F]` (the responder; exit 0 at its deadline or on SIGTERM/SIGINT, 2
//!   for bad ports, key file or a port it cannot bind), `check --peer HOST:tcp/PORT,udp/PORT`
//!   (repeatable) and `--key-file F` (check, probe, serve); config table `[listen]` (`tcp`, `udp`,
//!   `key-file`, `for`, `forever`, `rate`, `address`). The echo's wire format is in `net::echo`.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod context;
pub mod listen;
pub mod log;
pub mod net;
pub mod probe;
pub mod report;
pub mod runner;
pub mod serve;
