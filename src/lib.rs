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
//! - Truth over green (DESIGN's "Truth over green"): per result `unverified` (true on a pass the
//!   node could not confirm; `note` says what was not proven) and `direction` (`outbound`, or
//!   `inbound` for rows about traffic to the node, always `skip` with skip_reason
//!   "inbound: cannot be observed from this node" and the rule to verify as `hint`);
//!   `summary.unverified` and `summary.required_skip` (required outbound targets skipped for a
//!   missing variable: named in the table summary, never summarised as met). `--strict` (config
//!   `strict = true`) turns those into failures with the kinds `unverified` and `not_checked`.
//!   A selection of zero targets exits 2 naming the selection; a `check` in which every target
//!   was skipped prints its report and exits 2 ("nothing was checked").
//! - Error kinds: `io_error` for local OS errors that name no network cause; `unverified` and
//!   `not_checked` (only with `--strict`).
//! - Variables: `exfil_url` (the object the exfiltration check requests; replaces
//!   `other_storage_account`, which is now refused with a pointer to it) and `private_endpoints`
//!   (the services whose names must resolve privately, default `workspace,keyvault,acr`). Every
//!   variable is checked by one rule whatever its source (flag, `VNETPROBE_*`, config file,
//!   discovery). A catalog target may set its own `timeout` (at most 300 s) for a rare slow
//!   path: its probe cap and the run's deadline grow with it. The catalog's `required` may list clouds, DNS rows name their service with
//!   `private_endpoint`, inbound rows say `direction = "inbound"`; there is no `sovereign` profile.
//! - Metrics: every per-target family also carries `required`; added families
//!   `vnetprobe_probe_skipped`, `vnetprobe_probe_unverified`, `vnetprobe_probe_error_info`, `vnetprobe_targets`,
//!   `vnetprobe_runs_total`, `vnetprobe_reloads_total`, `vnetprobe_config_last_reload_successful`.
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

pub mod app;
pub mod build_info;
pub mod catalog;
pub mod cli;
pub mod context;
pub mod explain;
pub mod log;
pub mod manpage;
pub mod net;
pub mod probe;
pub mod progress;
pub mod report;
pub mod runner;
pub mod serve;
pub mod terminal;
pub mod wait;
