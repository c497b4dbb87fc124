//! The command line, as clap definitions and nothing else.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::context::Cloud;
use crate::logging::{Format, Level};

const ABOUT: &str =
    "Prove from inside an Azure VNet that every network path Azure Machine Learning needs works";

const CHECK_LONG: &str = "\
Runs every selected target of the catalog and reports each one with the fix for its failure.

Variables come from flags, then VNETPROBE_* variables, then the config file, then discovery \
(see `vnetprobe context --help`); `vnetprobe context` shows each value and its source.

Profiles: with no --profile (and no `profiles` in the config file), the catalog's defaults \
(no-public-ip, internet and private-endpoint) are fitted to the context:
  - private-endpoint runs only when workspace_id, storage_account, keyvault or acr is known;
  - exfiltration is added when exfil_url is set (a publicly readable blob outside the \
workspace);
  - compute-instance names ({instance}) run only when the instance is known (a compute \
instance);
  - packages, vscode and public-ip run only when asked for with --profile.
Others: `vnetprobe catalog --profile NAME` lists a profile's targets.

A pass the node cannot confirm (UDP silence, a sign-in wall instead of a WebSocket upgrade) is \
marked unconfirmed; a required target skipped for a missing variable is named as not checked; \
inbound rules are listed as rows to verify from Azure's side. --strict fails the first two.

Exit codes: 0 every required target that ran met its expectation (with --strict: and none was \
unconfirmed or skipped); 1 at least one required target failed; 2 usage, config or catalog \
error, a selection of no target, or a run in which every target was skipped.";

const CONTEXT_LONG: &str = "\
Prints every variable, its value and where it came from (flag, env, file, job, ci, nbvm, \
mlflow, batch, imds, derived, default). Sources, highest first: flags; VNETPROBE_* variables; \
the config file; then discovery, unless --no-discover, VNETPROBE_DISCOVER=0 or `discover = \
false`:
  job     AZUREML_ARM_WORKSPACE_NAME, AZUREML_WORKSPACE_ID, AZUREML_SERVICE_ENDPOINT (region), \
AZUREML_ARM_SUBSCRIPTION, AZUREML_ARM_RESOURCEGROUP
  ci      CI_NAME (instance), CI_WORKSPACE (workspace_name), CI_RESOURCE_GROUP; only when \
CI_NAME and CI_WORKSPACE are both set, as on a compute instance
  nbvm    key=value lines of {node-root}/mnt/azmnt/.nbvm: instance, workspace (or \
workspace_name), workspace_id, region (or location), resource_group, subscription
  mlflow  MLFLOW_TRACKING_URI=azureml://{region}.api.azureml.ms/...: region, cloud, workspace \
name
  batch   AZ_BATCH_ACCOUNT_URL (batch_account)
  imds    the Instance Metadata Service (compute.location, compute.azEnvironment; compute.name, \
subscriptionId, resourceGroupName and the private address as vm_name, subscription, resource_group, \
private_ip for the inbound rows' commands), asked directly with a 1 s deadline, only when the \
region is still unknown or the public-ip profile is selected
A malformed value is ignored with a warning.

Then the run's settings (timeout, concurrency, dns-server, proxy with its password masked, \
no-proxy, ca-file, public-roots, allow-intercept, strict, key-file, discover, imds-endpoint, \
node-root), each with its origin: flag, env (a VNETPROBE_* or proxy variable), file (the config \
file and line), discovery (the users' shell profile) or default. Each setting is checked by \
one rule whatever its source; an error names the flag, the variable or the file line, and \
exits 2. `--output json` prints the variables (an object keyed by variable, as before); \
`--settings --output json` prints the settings: {\"timeout\": {\"value\": \"5s\", \
\"origin\": \"default\"}, ...}, with \"from\" naming the flag, variable or file:line.";

const MAIN_EXAMPLES: &str = "\
Examples:
  vnetprobe check --region westeurope      # the default profiles, a table
  vnetprobe probe tls ci1.westeurope.instances.azureml.ms:8787
  vnetprobe explain tcp_timeout            # what it means, how to fix it";

const CHECK_EXAMPLES: &str = "\
Examples:
  vnetprobe check --region westeurope --set instance=ci1
  vnetprobe check --wait 5m --quiet        # provisioning: wait for the network
  vnetprobe check --trace --output json > report.json  # failing paths traced";

const PROBE_EXAMPLES: &str = "\
Examples:
  vnetprobe probe dns sa1.blob.core.windows.net --expect private
  vnetprobe probe trace tcp westeurope.api.azureml.ms:443  # which hop drops it
  vnetprobe probe http https://pypi.org/simple/ --proxy http://proxy:3128";

const SERVE_EXAMPLES: &str = "\
Examples:
  vnetprobe serve                          # 127.0.0.1:9834, a run every 60 s
  vnetprobe serve --listen 0.0.0.0:9834 --web-config-file web.yml
  curl -s --compressed http://127.0.0.1:9834/metrics | grep probe_success";

const CATALOG_EXAMPLES: &str = "\
Examples:
  vnetprobe catalog                        # the targets a check would run
  vnetprobe catalog --profile vscode --output json
  vnetprobe catalog --catalog my-catalog.toml --only 'pkg-*'";

const LISTEN_EXAMPLES: &str = "\
Examples:
  vnetprobe listen --tcp 445,29500 --udp 5831 --key-file peer.key
  vnetprobe listen --tcp 5000-5010 --for 1h
  vnetprobe check --peer 10.0.1.5:tcp/445,udp/5831 --key-file peer.key";

const CONTEXT_EXAMPLES: &str = "\
Examples:
  vnetprobe context                        # variables, settings, origins
  vnetprobe context --no-discover --output json
  VNETPROBE_REGION=westeurope vnetprobe context";

const MERGE_EXAMPLES: &str = "\
Examples:
  vnetprobe merge reports/*.json           # which node fails which target
  vnetprobe merge node1.json node2.json --output json";

const EXPLAIN_EXAMPLES: &str = "\
Examples:
  vnetprobe explain                        # every error kind, one line each
  vnetprobe explain dns_not_private";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  vnetprobe completions bash > /etc/bash_completion.d/vnetprobe
  vnetprobe completions zsh > \"${fpath[1]}/_vnetprobe\"
  vnetprobe completions fish > ~/.config/fish/completions/vnetprobe.fish";

const MAN_EXAMPLES: &str = "\
Examples:
  vnetprobe man | man -l -                 # read the main page
  vnetprobe man check | man -l -
  vnetprobe man --dir /usr/local/share/man/man1   # every page";

#[derive(Debug, Parser)]
#[command(name = "vnetprobe", version, long_version = crate::build_info::LONG_VERSION, about = ABOUT,
          propagate_version = true, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    /// Log level (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value = "warn")]
    pub log_level: Level,
    /// Log line format: text (time, level, message), or logfmt or json as Prometheus
    /// exporters write them.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe every selected target of the catalog.
    #[command(long_about = CHECK_LONG, after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Run one probe ad hoc.
    #[command(after_help = PROBE_EXAMPLES)]
    Probe(ProbeArgs),
    /// Run as a Prometheus exporter: probe the catalog every interval, serve the latest report.
    #[command(long_about = SERVE_LONG, after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// List the targets after expansion, probing nothing.
    #[command(after_help = CATALOG_EXAMPLES)]
    Catalog(CatalogArgs),
    /// Print every variable and setting, its value and where it came from.
    #[command(long_about = CONTEXT_LONG, after_help = CONTEXT_EXAMPLES)]
    Context(ContextArgs),
    /// Combine many nodes' JSON reports: which node fails which target.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Answer peer checks from other nodes (`check --peer`) on TCP and UDP ports.
    #[command(long_about = LISTEN_LONG, after_help = LISTEN_EXAMPLES)]
    Listen(ListenArgs),
    /// Explain an error kind: what it means, how it is detected, how to fix it.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain {
        /// An error kind such as tcp_timeout; without it, every kind is listed.
        #[arg(value_name = "KIND")]
        kind: Option<String>,
    },
    /// Print shell completions (see the examples for where to install them).
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff), or write every page to a folder.
    #[command(after_help = MAN_EXAMPLES)]
    Man {
        /// The subcommand whose page to print (vnetprobe-SUBCOMMAND(1)); without it, vnetprobe(1).
        #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
        page: Option<String>,
        /// Write vnetprobe.1 and every vnetprobe-SUBCOMMAND.1 into this folder.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Prometheus,
    Junit,
    /// The failures as commands to paste: NSG and firewall rules, DNS zone links, NO_PROXY.
    Fix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    Table,
    Json,
}

/// Where variables come from and which targets run.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    /// Profile to run (repeatable); default: the catalog's default profiles.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Set a variable: region, workspace_id, workspace_name, storage_account, instance, acr,
    /// keyvault, batch_account, exfil_url, private_endpoints, peer (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::context::parse_set)]
    pub set: Vec<(String, String)>,
    /// The Azure region, e.g. westeurope (same as --set region=R).
    #[arg(long, value_parser = parse_region)]
    pub region: Option<String>,
    /// The Azure cloud: it switches the domain suffixes.
    #[arg(long, value_enum)]
    pub cloud: Option<Cloud>,
    /// Config file (default: /etc/vnetprobe/config.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Catalog file or folder of *.toml, replacing the embedded catalog (repeatable).
    #[arg(long = "catalog", value_name = "PATH")]
    pub catalogs: Vec<PathBuf>,
    /// Run only targets whose id matches this glob (* and ?).
    #[arg(long, value_name = "GLOB")]
    pub only: Option<String>,
    /// Do not discover variables from the node (Azure ML variables, /mnt/azmnt/.nbvm, IMDS);
    /// also VNETPROBE_DISCOVER=0 or `discover = false` in the config file.
    #[arg(long)]
    pub no_discover: bool,
    /// Instance Metadata Service base URL, asked directly (never through a proxy) with a 1 s
    /// deadline [default: http://169.254.169.254].
    #[arg(long, value_name = "URL")]
    pub imds_endpoint: Option<String>,
    /// Root under which node files such as /mnt/azmnt/.nbvm are read [default: /].
    #[arg(long, value_name = "DIR")]
    pub node_root: Option<PathBuf>,
}

/// How probes behave on the network.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// DNS server to ask instead of the system's resolv.conf.
    #[arg(long, value_name = "IP[:PORT]", value_parser = crate::address::parse_server, global = true)]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Deadline of each probe, shared by its DNS lookup, connect, proxy, TLS and request, e.g.
    /// 5s, 800ms [default: 5s]; a probe is cut off at 1.2 times it at the latest.
    #[arg(long, value_name = "DUR", value_parser = parse_timeout, global = true)]
    pub timeout: Option<Duration>,
    /// Probes in flight at once, 1 to 4096 [default: 32].
    #[arg(long, value_name = "N", value_parser = parse_concurrency, global = true)]
    pub concurrency: Option<usize>,
    /// Extra trust anchors (PEM), trusted with the system store: a chain valid only through
    /// them is reported as tls_intercepted.
    #[arg(long, value_name = "PEM", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Let a TLS-inspecting firewall pass with a warning instead of failing.
    #[arg(long, global = true)]
    pub allow_intercept: bool,
    /// Proxy (http://[USER:PASS@]HOST[:PORT], port 1080 by default) for HTTP, TLS and WebSocket
    /// probes. Without it, the proxy curl would pick: https_proxy/HTTPS_PROXY, http_proxy (lower
    /// case only, as curl), all_proxy/ALL_PROXY; NO_PROXY applies to both.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy", global = true)]
    pub proxy: Option<String>,
    /// Ignore proxy variables: connect directly.
    #[arg(long, global = true)]
    pub no_proxy: bool,
    /// Fail what could not be confirmed: a pass the node cannot prove (UDP silence, a sign-in
    /// wall instead of a WebSocket upgrade) and a required target skipped for a missing
    /// variable (config: strict = true).
    #[arg(long, global = true)]
    pub strict: bool,
    /// The key shared with `vnetprobe listen` responders: peer echoes must carry its MAC
    /// [config: listen.key-file].
    #[arg(long, value_name = "FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Azure's service tags (the weekly ServiceTags_Public_*.json download, or `az network
    /// list-service-tags --location REGION` output): every address gets the tags holding it
    /// [config: service-tags].
    #[arg(long, value_name = "FILE", global = true)]
    pub service_tags: Option<PathBuf>,
    /// Exported NSG rules (`az network nic list-effective-nsg`, `az network nsg show`),
    /// repeatable: each result names the rule that decides it; inbound rows are evaluated
    /// [config: nsg = [...]].
    #[arg(long, value_name = "FILE", global = true)]
    pub nsg: Vec<PathBuf>,
    /// Exported routes (`az network nic show-effective-route-table`, `az network route-table
    /// show`): each result names its route and next hop [config: routes].
    #[arg(long, value_name = "FILE", global = true)]
    pub routes: Option<PathBuf>,
    /// A port on which an application-rule firewall (Azure Firewall) may answer TCP itself,
    /// beyond 80, 443 and 1433: a tcp target there passes on the connect alone only as
    /// unverified (repeatable or comma-separated; config: app-rule-ports = [8443]).
    #[arg(long = "app-rule-port", value_name = "PORT", value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub app_rule_ports: Vec<u16>,
    /// The VNet's address space (repeatable, e.g. `10.0.0.0/16`): what the `VirtualNetwork` tag
    /// of an `az network nsg show` file stands for; without it, the route file's `VnetLocal`
    /// routes, else an effective NSG file's tagMap [config: vnet-prefix = [...]].
    #[arg(long, value_name = "PREFIX", global = true)]
    pub vnet_prefix: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Also write the metrics (Prometheus text) to this file, atomically, for node_exporter's
    /// textfile collector (name it *.prom).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// Probe a `vnetprobe listen` responder on another node: HOST:tcp/PORT,udp/PORT
    /// (ranges and bare ports allowed: 10.0.1.5:tcp/445,44224,udp/5831; repeatable).
    #[arg(long = "peer", value_name = "HOST:tcp/PORT,udp/PORT")]
    pub peers: Vec<String>,
    /// Wait for the network: re-run failing targets with backoff (1 s doubling to 15 s) until
    /// they pass or DUR is over, then report the last attempt and when each target became
    /// reachable.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// No progress line on stderr (it is shown only when stderr is a terminal and the output
    /// is the table).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Trace the path of each failing direct target (tcp_timeout, tls_reset_after_hello, UDP
    /// silence): which hop answered last, which rejected; one trace per address, protocol and
    /// port (at most 64), all within one more --timeout. Off by default, --strict included: it sends up to 16
    /// low-TTL packets per failing path, which firewalls may log as a traceroute.
    #[arg(long)]
    pub trace: bool,
}

/// The default address of `serve`: loopback, port 9834.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9834";

const SERVE_LONG: &str = "\
Runs the selected targets every interval (with a little jitter, never two runs at once) and \
serves the latest report over HTTP. A scrape never starts a probe.

Endpoints: /metrics (Prometheus text; gzip-compressed when the scraper accepts it), /results (the \
JSON report), /healthz (200 while the probe loop keeps publishing; 503 once the last report is \
older than a run, an interval and 30 s), /readyz (200 once the first run finished, 503 before), / \
(a status page of the last run, refreshed every interval). A probe loop that dies ends the daemon \
with exit code 1, for the service manager to restart it.

Signals: SIGTERM or SIGINT stop within a second; SIGHUP reloads the catalog, the config file \
and the web config file, keeping the old ones (and logging why) when the new ones are invalid.

--web-config-file takes the web config of Prometheus exporters (exporter-toolkit): \
tls_server_config (cert_file, key_file, client_auth_type, client_ca_file, min_version, \
max_version) and basic_auth_users (user: bcrypt hash). /healthz and /readyz answer without \
authentication.";

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub net: NetArgs,
    /// Address to listen on, IP:PORT [default: 127.0.0.1:9834; config: serve.listen]; also
    /// spelt --web.listen-address, as exporter-toolkit's exporters do.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, visible_alias = "web.listen-address")]
    pub listen: Option<std::net::SocketAddr>,
    /// Time between the starts of two runs [default: 60s; config: serve.interval].
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// TLS and Basic auth settings, in exporter-toolkit's web config format (YAML)
    /// [config: serve.web-config-file].
    #[arg(long, value_name = "FILE", visible_alias = "web.config.file")]
    pub web_config_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub output: ListOutput,
}

#[derive(Debug, Clone, Args)]
pub struct ContextArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// The network settings a check would run with, shown with their origin.
    #[command(flatten)]
    pub net: NetArgs,
    /// Show only the run's settings (timeout, proxy, ...), with their origin; with
    /// `--output json`, an object keyed by setting.
    #[arg(long)]
    pub settings: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub output: ListOutput,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub what: ProbeWhat,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProbeWhat {
    /// Resolve a name.
    Dns {
        name: String,
        /// What the answer must be.
        #[arg(long, value_enum, default_value = "reachable")]
        expect: DnsExpect,
    },
    /// Open a TCP connection.
    Tcp {
        #[arg(value_name = "HOST:PORT")]
        endpoint: String,
    },
    /// Send a UDP datagram and wait for a reply or a rejection.
    Udp {
        #[arg(value_name = "HOST:PORT")]
        endpoint: String,
    },
    /// Complete a TLS handshake and check the chain.
    Tls {
        #[arg(value_name = "HOST:PORT")]
        endpoint: String,
    },
    /// Send an HTTP GET.
    Http {
        #[arg(value_name = "URL")]
        url: String,
    },
    /// Upgrade to a WebSocket.
    Ws {
        #[arg(value_name = "URL")]
        url: String,
    },
    /// Probe a TCP or UDP path, then trace it: the protocol's own first packet (a SYN, or the
    /// datagram) with TTL 1, 2, ... on an ordinary socket (no raw socket, no privilege), and
    /// which hop answered: time exceeded, unreachable (with the code's meaning), or the
    /// destination. Silence after hop N is reported as that.
    Trace {
        #[arg(value_enum)]
        protocol: TraceProtocol,
        #[arg(value_name = "HOST:PORT")]
        endpoint: String,
        /// The highest TTL, 1 to 64.
        #[arg(long, value_name = "N", default_value_t = crate::net::trace::DEFAULT_MAX_TTL, value_parser = clap::value_parser!(u8).range(1..=64))]
        max_ttl: u8,
    },
}

/// What `probe trace` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceProtocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DnsExpect {
    Reachable,
    Private,
    Public,
}

/// Parses a listen address: an IP and a port (`127.0.0.1:9834`, `[::]:9834`).
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| match s.strip_prefix(':') {
        Some(port) => {
            format!("{s:?} needs an address: 0.0.0.0:{port} or [::]:{port} for every interface")
        }
        None => {
            format!("{s:?} is not IP:PORT (examples: 127.0.0.1:9834, [::1]:9834, 0.0.0.0:9834)")
        }
    })
}

/// `--region`: the same rule as `--set region=R` and the file's `[set] region`.
pub fn parse_region(s: &str) -> Result<String, String> {
    crate::context::check_setting("region", s)
}

pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::settings::duration(s, &crate::settings::TIMEOUT)
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::settings::duration(s, &crate::settings::INTERVAL)
}

pub fn parse_concurrency(s: &str) -> Result<usize, String> {
    let n = s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"))?;
    crate::settings::count(n, &crate::settings::CONCURRENCY)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 800ms, 1m)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// JSON reports written by `check --output json`, one per node.
    #[arg(value_name = "REPORT.json", required = true)]
    pub reports: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub output: ListOutput,
    /// Add the node-by-node table (JSON always has every node).
    #[arg(long)]
    pub nodes: bool,
}

const LISTEN_LONG: &str = "\
Runs the responder of peer checks: each request from `vnetprobe check --peer` on another node gets
an echo of its nonce, signed with HMAC-SHA256 when both ends share --key-file, so a device on the
path cannot answer in this node's place. A reply is never larger than its request (no
amplification), each source address is rate-limited, and every answered peer is logged to stderr.

The responder stops by itself after --for (15 minutes by default) unless --forever is given, so a
forgotten responder does not stay open; SIGTERM or SIGINT stop it at once. Ports below 1024 need
CAP_NET_BIND_SERVICE (the vnetprobe-listen unit grants only that).

Ports, key, deadline and rate also come from the [listen] table of the config file.";

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// TCP ports to answer on: 445,44224 or ranges 5000-5010 [config: listen.tcp].
    #[arg(long, value_name = "PORTS")]
    pub tcp: Option<String>,
    /// UDP ports to answer on [config: listen.udp].
    #[arg(long, value_name = "PORTS")]
    pub udp: Option<String>,
    /// The shared key (at least 16 bytes): replies carry its MAC, and only requests signed with
    /// it are answered [config: listen.key-file].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Stop after this long [default: 15m; config: listen.for].
    #[arg(long = "for", value_name = "DUR", value_parser = parse_duration, conflicts_with = "forever")]
    pub for_: Option<Duration>,
    /// Never stop by itself (under a supervisor that stops it) [config: listen.forever].
    #[arg(long)]
    pub forever: bool,
    /// Replies per second to one source address, with bursts of twice that [default: 10;
    /// config: listen.rate].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub rate: Option<u32>,
    /// The address to listen on [default: 0.0.0.0, every IPv4 interface; config: listen.address].
    #[arg(long, value_name = "IP")]
    pub address: Option<std::net::IpAddr>,
    /// Config file (default: /etc/vnetprobe/config.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
