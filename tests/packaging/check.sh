#!/usr/bin/env bash
# Packaging tests: Prometheus rules, Grafana dashboard, systemd units, config
# template, scripts, the Azure ML setup script and the .deb layout.
#
# Usage: tests/packaging/check.sh
#
# The default tier needs no Rust build: it uses tests/packaging/fixtures/
# fake-vnetprobe.sh where a binary is needed. Tools: bash, python3, promtool
# (Debian: prometheus), systemd-analyze (Debian: systemd), dpkg-deb, curl;
# ShellCheck and PyYAML are used when present. Missing promtool or
# systemd-analyze are installed with apt-get when running as root.
#
# VNETPROBE_PACKAGING_FULL=1 adds the tests that need the real binary and root:
#   static build (no interpreter, no NEEDED, runs in an empty root, probes a
#   loopback listener), .deb install/purge, the setup script against
#   fixtures/catalog.toml (a closed loopback port), the exporter's metric names
#   against the dashboard and rules, the config template against the parser.
#   VNETPROBE_BIN=path skips the static build and uses that binary.
#
# Network: only loopback. Every real check runs with --no-discover (no IMDS).
#
# Output: one "ok"/"not ok"/"skip" line per test (details of failures
# indented below), the dashboard's metric names, and "N passed, N failed" last.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/tests/packaging"
fixtures="$here/fixtures"
pkg="$root/packaging"
units="$root/systemd"
fake="$fixtures/fake-vnetprobe.sh"
readonly MAX_EXPOSURE=1.5

# The metric contract (DESIGN.md and the exporter brief).
readonly CONTRACT_METRICS="vnetprobe_probe_success vnetprobe_probe_duration_seconds
vnetprobe_probe_phase_seconds vnetprobe_probe_error_info vnetprobe_probe_skipped
vnetprobe_dns_private vnetprobe_tls_cert_expiry_timestamp_seconds
vnetprobe_last_run_timestamp_seconds vnetprobe_run_duration_seconds
vnetprobe_targets vnetprobe_build_info"

passed=0
failed=0
skipped=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vnetprobe-pkgtest.XXXXXX")
# Background helpers (loopback servers) record their pid here; command
# substitutions and test subshells cannot hand variables back.
pidfile="$tmp/bg.pids"
: >"$pidfile"
stop_bg() {
    local pid
    while read -r pid; do
        kill "$pid" 2>/dev/null
    done <"$pidfile"
    : >"$pidfile"
}
cleanup() {
    stop_bg
    rm -rf "$tmp"
}
trap cleanup EXIT

# Never let a proxy from the environment route loopback tests elsewhere.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# fd 3 is the real stdout; test bodies' output is captured and shown on failure.
exec 3>&1

# run_test NAME FUNCTION: status 0 pass, 77 skip, anything else fail.
run_test() {
    local name=$1 fn=$2 log="$tmp/log.$2" rc=0
    (
        trap stop_bg EXIT
        "$fn"
    ) >"$log" 2>&1 || rc=$?
    case $rc in
        0) passed=$((passed + 1)); echo "ok - $name" >&3 ;;
        77) skipped=$((skipped + 1)); echo "skip - $name: $(tail -n1 "$log")" >&3 ;;
        *)
            failed=$((failed + 1))
            echo "not ok - $name" >&3
            tail -n 40 "$log" | sed 's/^/    /' >&3
            ;;
    esac
}

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "$*"; exit 77; }

# Tools the default tier cannot do without: install them when we can.
ensure_tool() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null && return 0
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing $package for $tool" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null 2>&1; }
    fi
    command -v "$tool" >/dev/null
}

cargo_version() {
    awk '/^\[/ { p = ($0 == "[package]") } p && /^version[[:space:]]*=/ { gsub(/.*=[[:space:]]*"|".*/, ""); print; exit }' \
        "$root/Cargo.toml"
}

# ---------------------------------------------------------------------------
# Prometheus rules
# ---------------------------------------------------------------------------
t_promtool_check_rules() {
    ensure_tool promtool prometheus || fail "promtool not found (Debian package: prometheus)"
    promtool check rules "$pkg/prometheus/vnetprobe.rules.yml"
}

t_promtool_test_rules() {
    ensure_tool promtool prometheus || fail "promtool not found (Debian package: prometheus)"
    (cd "$pkg/prometheus" && promtool test rules vnetprobe.rules.test.yml)
}

t_rules_cover_alerts() {
    local alert
    for alert in VnetprobeRequiredTargetFailing VnetprobePrivateEndpointResolvesPublic \
        VnetprobeCertificateExpiringSoon VnetprobeRunsStale VnetprobeDown; do
        grep -q "alert: $alert\$" "$pkg/prometheus/vnetprobe.rules.yml" || fail "rule $alert missing"
        grep -q "alertname: $alert\$" "$pkg/prometheus/vnetprobe.rules.test.yml" || fail "no unit test for $alert"
        # Every alert needs both a firing case and a not-firing case.
        python3 - "$pkg/prometheus/vnetprobe.rules.test.yml" "$alert" <<'PY' || fail "$alert lacks a fire or a not-fire case"
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n\s*- eval_time:", text)
fire = nofire = False
for b in blocks:
    if re.search(r"alertname: %s\n" % re.escape(sys.argv[2]), b):
        if re.search(r"exp_alerts: \[\]", b):
            nofire = True
        elif "exp_labels" in b:
            fire = True
sys.exit(0 if fire and nofire else 1)
PY
    done
}

t_rules_metrics_in_contract() {
    local names name
    names=$(grep -E '^\s*expr:' "$pkg/prometheus/vnetprobe.rules.yml" | grep -oE 'vnetprobe_[a-z0-9_]+' | sort -u)
    [[ -n "$names" ]] || fail "no vnetprobe metrics found in rule expressions"
    for name in $names; do
        grep -qw "$name" <<<"$CONTRACT_METRICS" || fail "rules query $name, which is not in the metric contract"
    done
    echo "$names"
}

# ---------------------------------------------------------------------------
# Grafana dashboard
# ---------------------------------------------------------------------------
# Prints every metric name the dashboard queries (to the real stdout too).
t_dashboard() {
    local names name
    names=$(python3 - "$pkg/grafana/vnetprobe.json" "$CONTRACT_METRICS" <<'PY'
import json, re, sys

dash = json.load(open(sys.argv[1]))
contract = set(sys.argv[2].split())
errors = []
DS = "${DS_PROMETHEUS}"

if not 36 <= dash.get("schemaVersion", 0) <= 41:
    errors.append("schemaVersion %r is not 36..41" % dash.get("schemaVersion"))
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
if variables.get("DS_PROMETHEUS", {}).get("type") != "datasource":
    errors.append("no datasource variable DS_PROMETHEUS")
if "instance" not in variables:
    errors.append("no template variable 'instance'")

exprs = []
def walk(panels):
    for p in panels:
        if p.get("type") != "row":
            ds = p.get("datasource") or {}
            if ds.get("uid") != DS:
                errors.append("panel %r: datasource is not %s" % (p.get("title"), DS))
            if not p.get("targets"):
                errors.append("panel %r has no queries" % p.get("title"))
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != DS:
                errors.append("panel %r: a query's datasource is not %s" % (p.get("title"), DS))
            expr = t.get("expr", "")
            exprs.append(expr)
            if "vnetprobe_" in expr and "$instance" not in expr:
                errors.append("panel %r ignores $instance: %s" % (p.get("title"), expr))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
for v in variables.values():
    q = v.get("query")
    exprs.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    exprs.append(v.get("definition", ""))

names = sorted(set(re.findall(r"\b(vnetprobe_[a-z0-9_]+)\b", " ".join(exprs))))
for n in names:
    if n not in contract:
        errors.append("dashboard queries %s, which is not in the metric contract" % n)
must = ["vnetprobe_probe_success", "vnetprobe_probe_error_info", "vnetprobe_probe_phase_seconds",
        "vnetprobe_dns_private", "vnetprobe_tls_cert_expiry_timestamp_seconds",
        "vnetprobe_run_duration_seconds", "vnetprobe_last_run_timestamp_seconds"]
for n in must:
    if n not in names:
        errors.append("dashboard does not show %s" % n)
ids = [p["id"] for p in dash.get("panels", [])]
if len(ids) != len(set(ids)):
    errors.append("duplicate panel ids")
for e in errors:
    print("ERROR: " + e, file=sys.stderr)
print("\n".join(names))
sys.exit(1 if errors else 0)
PY
    ) || fail "dashboard checks failed"
    echo "$names"
    {
        echo "# metrics queried by packaging/grafana/vnetprobe.json:"
        while IFS= read -r name; do echo "#   $name"; done <<<"$names"
    } >&3
}

# ---------------------------------------------------------------------------
# systemd units
# ---------------------------------------------------------------------------
t_units_exposure() {
    ensure_tool systemd-analyze systemd || fail "systemd-analyze not found (Debian package: systemd)"
    local unit out score
    for unit in "$units"/*.service; do
        out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
        score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
        [[ -n "$score" ]] || fail "no exposure score for $unit: $out"
        echo "$(basename "$unit"): exposure $score"
        echo "#   $(basename "$unit"): exposure $score (max $MAX_EXPOSURE)" >&3
        awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
            fail "$(basename "$unit") exposure $score > $MAX_EXPOSURE:
$(grep '✗' <<<"$out")"
    done
}

t_units_verify() {
    ensure_tool systemd-analyze systemd || fail "systemd-analyze not found (Debian package: systemd)"
    local out
    # The binary is not installed here: that one complaint is expected.
    out=$(cd "$units" && systemd-analyze verify --man=no vnetprobe.service vnetprobe-check.service \
        vnetprobe-check.timer vnetprobe-listen.service 2>&1 | grep -v 'Command /usr/bin/vnetprobe is not executable')
    [[ -z "$out" ]] || fail "systemd-analyze verify: $out"
}

t_units_contract() {
    local s="$units/vnetprobe.service" c="$units/vnetprobe-check.service" t="$units/vnetprobe-check.timer"
    grep -qx 'ExecStart=/usr/bin/vnetprobe serve --config /etc/vnetprobe/config.toml' "$s" || fail "serve ExecStart"
    # shellcheck disable=SC2016 # a literal $MAINPID
    grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$s" || fail "serve ExecReload"
    grep -q '^ExecStart=/usr/bin/vnetprobe check .*--output prometheus --textfile /var/lib/vnetprobe/vnetprobe.prom$' "$c" ||
        fail "check ExecStart"
    # The symlink for node_exporter, as root, and never a hidden failure ("-").
    grep -q '^ExecStartPre=+/bin/sh -c .*ln -sfn /var/lib/vnetprobe/vnetprobe.prom /var/lib/prometheus/node-exporter/vnetprobe.prom' "$c" ||
        fail "check ExecStartPre (textfile symlink)"
    grep -qx 'Type=oneshot' "$c" || fail "check service is not oneshot"
    grep -qx 'SuccessExitStatus=1' "$c" || fail "check service must treat exit 1 as success"
    grep -qx 'StateDirectory=vnetprobe' "$c" || fail "check StateDirectory"
    grep -qx 'OnUnitActiveSec=5min' "$t" || fail "timer interval"
    grep -q '^RandomizedDelaySec=' "$t" || fail "timer has no randomized delay"
    local f
    for f in "$s" "$c"; do
        grep -q '^IPAddressDeny=' "$f" && fail "$f sets IPAddressDeny (the probes must reach anything)"
        grep -qx 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' "$f" || fail "$f RestrictAddressFamilies"
        grep -qx 'CapabilityBoundingSet=' "$f" || fail "$f CapabilityBoundingSet"
        grep -qx 'User=vnetprobe' "$f" || fail "$f User"
        if grep -q '^ReadWritePaths=' "$f"; then fail "$f must not write outside its state directory"; fi
    done
    grep -qx 'd /var/lib/vnetprobe 0755 vnetprobe vnetprobe -' "$units/vnetprobe.tmpfiles" ||
        fail "tmpfiles: the state directory"
    # systemd-tmpfiles refuses ACLs below Debian's /var/lib/prometheus (owned by prometheus).
    if grep -q '^a' "$units/vnetprobe.tmpfiles"; then fail "tmpfiles must not set ACLs"; fi
    if grep -Eq '(tmpfiles|setfacl|install|ln) .*\|\| true' "$pkg/debian/postinst"; then
        fail "postinst hides a failed file system step (|| true)"
    fi
}

# ---------------------------------------------------------------------------
# Config template
# ---------------------------------------------------------------------------
# Writes the template with every setting uncommented to $1.
uncomment_config() {
    sed -E 's/^#(\[[a-z-]+\]|[a-z_-]+ = )/\1/' "$pkg/config.toml" >"$1"
}

t_config_template() {
    local cfg="$pkg/config.toml"
    if grep -vE '^(#.*)?$' "$cfg"; then
        fail "config.toml must be fully commented out (lines above are live)"
    fi
    uncomment_config "$tmp/config.live.toml"
    python3 - "$tmp/config.live.toml" <<'PY'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
top = {"cloud", "profiles", "catalog", "dns-server", "timeout", "concurrency", "ca-file",
       "allow-intercept", "strict", "proxy", "no-proxy", "only", "discover", "imds-endpoint",
       "node-root", "set", "serve", "listen"}
sets = {"region", "workspace_id", "workspace_name", "storage_account", "instance", "acr",
        "keyvault", "batch_account", "exfil_url", "private_endpoints", "peer"}
serve = {"listen", "interval", "web-config-file"}
listen = {"tcp", "udp", "key-file", "for", "forever", "rate", "address"}
errors = []
if set(cfg) != top:
    errors.append("top-level keys: missing %s, unexpected %s" % (sorted(top - set(cfg)), sorted(set(cfg) - top)))
if set(cfg.get("set", {})) != sets:
    errors.append("[set] keys differ: %s" % sorted(set(cfg.get("set", {})) ^ sets))
if set(cfg.get("serve", {})) != serve:
    errors.append("[serve] keys differ: %s" % sorted(set(cfg.get("serve", {})) ^ serve))
if set(cfg.get("listen", {})) != listen:
    errors.append("[listen] keys differ: %s" % sorted(set(cfg.get("listen", {})) ^ listen))
if cfg.get("serve", {}).get("listen") != "127.0.0.1:9834":
    errors.append("serve.listen default must be 127.0.0.1:9834")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
}

# ---------------------------------------------------------------------------
# Scripts
# ---------------------------------------------------------------------------
t_script_syntax() {
    local f
    for f in "$pkg"/*.sh "$pkg"/azureml/*.sh "$here"/*.sh; do
        bash -n "$f" || fail "bash -n $f"
        [[ -x "$f" ]] || fail "$f is not executable"
    done
    for f in "$pkg"/debian/postinst "$pkg"/debian/prerm "$pkg"/debian/postrm "$fake"; do
        sh -n "$f" || fail "sh -n $f"
        [[ -x "$f" ]] || fail "$f is not executable"
    done
}

t_shellcheck() {
    command -v shellcheck >/dev/null || skip "shellcheck not installed"
    shellcheck -x "$pkg"/*.sh "$pkg"/azureml/*.sh "$here"/*.sh &&
        shellcheck -s sh "$pkg"/debian/postinst "$pkg"/debian/prerm "$pkg"/debian/postrm "$fake"
}

t_fleet_job() {
    python3 -c 'import yaml' 2>/dev/null || skip "PyYAML not installed"
    python3 - "$pkg/azureml/fleet-job.yml" <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)
want(job.get("$schema") == "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json", "$schema")
want(job.get("type") == "command", "type: command")
want(job.get("resources", {}).get("instance_count") == 4, "resources.instance_count: 4")
dist = job.get("distribution", {})
want(dist.get("type") in ("pytorch", "mpi"), "distribution.type pytorch or mpi")
want(dist.get("process_count_per_instance") == 1, "one process per node")
want(isinstance(job.get("code"), str), "code folder")
want(job.get("outputs", {}).get("reports", {}).get("type") == "uri_folder", "outputs.reports uri_folder")
cmd = job.get("command", "")
for part in ("vnetprobe check --output json", "${{outputs.reports}}/$(hostname).json", "|| true"):
    want(part in cmd, "command contains %r" % part)
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
}

# ---------------------------------------------------------------------------
# Azure ML setup script, with the fake binary
# ---------------------------------------------------------------------------
setup_script="$pkg/azureml/setup-vnetprobe.sh"

# expect_setup WANT_RC FAKE_EXIT ARGS...: runs the setup script with the fake.
expect_setup() {
    local want=$1 fake_exit=$2 rc=0
    shift 2
    FAKE_VNETPROBE_EXIT=$fake_exit "$setup_script" --binary "$fake" "$@" >"$tmp/setup.out" 2>&1 || rc=$?
    if [[ $rc -ne $want ]]; then
        cat "$tmp/setup.out"
        fail "setup $* with vnetprobe exiting $fake_exit: exit $rc, want $want"
    fi
}

t_setup_exit_semantics() {
    local logs="$tmp/setup-logs"
    expect_setup 0 0 --log-dir "$logs/pass"
    expect_setup 1 1 --log-dir "$logs/fail"
    expect_setup 1 1 --mode fail --log-dir "$logs/fail2"
    expect_setup 0 1 --mode warn --log-dir "$logs/warn"
    grep -q 'FAIL test-closed-loopback' "$tmp/setup.out" || fail "warn mode does not print the failures"
    expect_setup 2 2 --mode fail --log-dir "$logs/usage"
    expect_setup 2 2 --mode warn --log-dir "$logs/usage2"
    expect_setup 101 101 --mode warn --log-dir "$logs/crash"
    local d
    for d in pass fail warn; do
        [[ -s "$logs/$d/check.json" ]] || fail "$d: no check.json in --log-dir"
        [[ -s "$logs/$d/check.txt" ]] || fail "$d: no check.txt in --log-dir"
        python3 -m json.tool "$logs/$d/check.json" >/dev/null || fail "$d: check.json is not JSON"
    done
    grep -q "unknown field" "$logs/usage/check.err" || fail "exit 2: vnetprobe's message not kept in check.err"
}

t_setup_arguments() {
    local args="$tmp/args" rc=0
    : >"$args"
    FAKE_VNETPROBE_ARGS=$args expect_setup 0 0 --log-dir "$tmp/sa" --profile no-public-ip --profile=public-ip \
        -- --catalog "$fixtures/catalog.toml" --no-discover
    grep -qx -- "check --profile no-public-ip --profile public-ip --catalog $fixtures/catalog.toml --no-discover --wait 2m --output json" "$args" ||
        fail "check arguments not passed through: $(cat "$args")"
    grep -qx -- "check --profile no-public-ip --profile public-ip --catalog $fixtures/catalog.toml --no-discover --output table" "$args" ||
        fail "table run arguments: $(cat "$args")"
    : >"$args"
    FAKE_VNETPROBE_ARGS=$args expect_setup 0 0 --log-dir "$tmp/sa-strict" --mode strict --wait 0 -- --no-discover
    grep -qx -- "check --no-discover --strict --output json" "$args" ||
        fail "--mode strict does not pass --strict (or --wait 0 still waits): $(cat "$args")"
    : >"$args"
    FAKE_VNETPROBE_ARGS=$args expect_setup 0 0 --log-dir "$tmp/sa-wait" --wait 30s -- --no-discover
    grep -qx -- "check --no-discover --wait 30s --output json" "$args" ||
        fail "--wait is not passed to the JSON run: $(cat "$args")"
    grep -qx -- "check --no-discover --output table" "$args" ||
        fail "the table run waits again: $(cat "$args")"
    "$setup_script" --binary "$fake" --mode sometimes >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "bad --mode: exit $rc, want 2"
    rc=0
    "$setup_script" --binary "$tmp/does-not-exist" --log-dir "$tmp/sa2" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "missing binary: exit $rc, want 2"
    rc=0
    "$setup_script" --binary "$fake" --bogus >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "unknown option: exit $rc, want 2"
    rc=0
    "$setup_script" --binary "$fake" --log-dir "$tmp/sa4" -- --output table >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "--output after --: exit $rc, want 2"
    # A binary without the exec bit (as on the workspace file share) still runs.
    cp "$fake" "$tmp/noexec-vnetprobe"
    chmod 0644 "$tmp/noexec-vnetprobe"
    rc=0
    "$setup_script" --binary "$tmp/noexec-vnetprobe" --log-dir "$tmp/sa3" >/dev/null 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || fail "non-executable --binary: exit $rc, want 0"
}

# Prints the port a helper server wrote to $1 once it is there (at most 5 s).
await_port() {
    local _
    for _ in $(seq 50); do
        [[ -s "$1" ]] && { cat "$1"; return 0; }
        sleep 0.1
    done
    return 1
}

# Serves $1's directory over HTTP on loopback; prints the port.
serve_dir() {
    local dir=$1 portfile="$tmp/http.port.$RANDOM"
    python3 - "$dir" "$portfile" <<'PY' >/dev/null 2>&1 &
import functools, http.server, os, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
tmp = sys.argv[2] + ".tmp"
open(tmp, "w").write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[2])
srv.serve_forever()
PY
    echo $! >>"$pidfile"
    await_port "$portfile"
}

t_setup_binary_url() {
    command -v curl >/dev/null || skip "curl not installed"
    local port sum rc=0
    mkdir -p "$tmp/www"
    cp "$fake" "$tmp/www/vnetprobe"
    port=$(serve_dir "$tmp/www") || fail "could not start a loopback HTTP server"
    sum=$(sha256sum "$fake" | cut -d' ' -f1)
    "$setup_script" --binary "http://127.0.0.1:$port/vnetprobe" --sha256 "$sum" --log-dir "$tmp/url" >"$tmp/url.out" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || { cat "$tmp/url.out"; fail "URL binary: exit $rc, want 0"; }
    [[ -s "$tmp/url/check.json" ]] || fail "URL binary: no check.json"
    rc=0
    "$setup_script" --binary "http://127.0.0.1:$port/vnetprobe" --sha256 "$(printf '0%.0s' $(seq 64))" \
        --log-dir "$tmp/url2" >"$tmp/url.out" 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "SHA-256 mismatch: exit $rc, want 2"
    grep -q 'SHA-256 mismatch' "$tmp/url.out" || fail "SHA-256 mismatch not explained"
    rc=0
    "$setup_script" --binary "http://127.0.0.1:$port/missing" --log-dir "$tmp/url3" >"$tmp/url.out" 2>&1 || rc=$?
    [[ $rc -eq 2 ]] || fail "404 download: exit $rc, want 2"
}

t_setup_install_service() {
    local dest="$tmp/instroot" rc=0
    VNETPROBE_INSTALL_ROOT=$dest "$setup_script" --binary "$fake" --log-dir "$tmp/is" --install-service \
        --profile no-public-ip >"$tmp/is.out" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || { cat "$tmp/is.out"; fail "install-service: exit $rc"; }
    [[ -x "$dest/usr/local/bin/vnetprobe" ]] || fail "binary not installed"
    grep -qx 'ExecStart=/usr/local/bin/vnetprobe serve --config /etc/vnetprobe/config.toml' \
        "$dest/etc/systemd/system/vnetprobe.service" || fail "unit ExecStart not pointed at /usr/local/bin"
    [[ $(stat -c %a "$dest/etc/vnetprobe/config.toml") == 640 ]] || fail "config.toml not 0640"
    python3 - "$dest/etc/vnetprobe/config.toml" <<'PY' || fail "generated config.toml"
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
assert cfg == {"profiles": ["no-public-ip"]}, cfg
PY
}

# ---------------------------------------------------------------------------
# .deb layout, with the fake binary
# ---------------------------------------------------------------------------
t_deb_layout() {
    command -v dpkg-deb >/dev/null || skip "dpkg-deb not installed"
    local deb version contents f
    deb=$(VNETPROBE_BIN=$fake "$pkg/build-deb.sh" "$tmp/deb" 2>"$tmp/deb.err" | tail -n1) ||
        { cat "$tmp/deb.err"; fail "build-deb.sh failed"; }
    [[ -f "$deb" ]] || { cat "$tmp/deb.err"; fail "build-deb.sh did not print a .deb path (got '$deb')"; }
    version=$(cargo_version)
    [[ $(dpkg-deb -f "$deb" Version) == "${version/-/\~}" ]] || fail "Version $(dpkg-deb -f "$deb" Version), Cargo.toml says $version"
    [[ $(dpkg-deb -f "$deb" Package) == vnetprobe ]] || fail "Package name"
    contents=$(dpkg-deb -c "$deb")
    for f in ./usr/bin/vnetprobe ./lib/systemd/system/vnetprobe.service \
        ./lib/systemd/system/vnetprobe-check.service ./lib/systemd/system/vnetprobe-check.timer \
        ./lib/systemd/system/vnetprobe-listen.service ./etc/vnetprobe/config.toml ./usr/lib/tmpfiles.d/vnetprobe.conf \
        ./usr/share/man/man1/vnetprobe.1.gz ./usr/share/man/man1/vnetprobe-check.1.gz \
        ./usr/share/bash-completion/completions/vnetprobe \
        ./usr/share/zsh/vendor-completions/_vnetprobe ./usr/share/fish/vendor_completions.d/vnetprobe.fish \
        ./usr/share/doc/vnetprobe/copyright; do
        grep -q " $f\$" <<<"$contents" || fail "$f missing from the package"
    done
    if grep -v ' root/root ' <<<"$contents"; then fail "files not owned by root/root"; fi
    grep -q '^-rwxr-xr-x .* ./usr/bin/vnetprobe$' <<<"$contents" || fail "/usr/bin/vnetprobe mode"
    mkdir -p "$tmp/ctl"
    dpkg-deb -e "$deb" "$tmp/ctl"
    [[ $(cat "$tmp/ctl/conffiles") == /etc/vnetprobe/config.toml ]] || fail "conffiles: $(cat "$tmp/ctl/conffiles")"
    for f in postinst prerm postrm; do
        [[ -x "$tmp/ctl/$f" ]] || fail "DEBIAN/$f missing or not executable"
    done
    grep -q 'adduser --system --group --no-create-home --home /nonexistent' "$tmp/ctl/postinst" || fail "postinst adduser"
    dpkg-deb -x "$deb" "$tmp/x"
    (cd "$tmp/x" && md5sum --quiet -c "$tmp/ctl/md5sums") || fail "md5sums do not match"
    zcat "$tmp/x/usr/share/man/man1/vnetprobe.1.gz" | grep -q '^\.TH' || fail "man page is not roff"
}

t_deb_needs_generators() {
    local rc=0
    cat >"$tmp/old-vnetprobe" <<'SH'
#!/bin/sh
[ "$1" = --version ] && { echo "vnetprobe 0.0.0"; exit 0; }
echo "error: unrecognized subcommand '$1'" >&2
exit 2
SH
    chmod +x "$tmp/old-vnetprobe"
    VNETPROBE_BIN="$tmp/old-vnetprobe" "$pkg/build-deb.sh" "$tmp/deb-old" >"$tmp/old.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "build-deb.sh accepted a binary without 'vnetprobe man'"
    grep -q "vnetprobe man" "$tmp/old.out" || { cat "$tmp/old.out"; fail "the error does not name 'vnetprobe man'"; }
    # A binary that prints nothing (a stub main) must fail too.
    printf '#!/bin/sh\nexit 0\n' >"$tmp/stub-vnetprobe"
    chmod +x "$tmp/stub-vnetprobe"
    rc=0
    VNETPROBE_BIN="$tmp/stub-vnetprobe" "$pkg/build-deb.sh" "$tmp/deb-stub" >"$tmp/stub.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "build-deb.sh accepted a binary whose 'man' prints nothing"
    grep -q "printed nothing" "$tmp/stub.out" || { cat "$tmp/stub.out"; fail "unclear error for an empty man page"; }
}

# ---------------------------------------------------------------------------
# Full tier: the real binary
# ---------------------------------------------------------------------------
static_bin=""
static_failed=0
# Sets static_bin: VNETPROBE_BIN or build-static.sh. Called once from the
# main shell before the full tier, so the tests share one build.
get_static_bin() {
    if [[ $static_failed -eq 1 ]]; then
        tail -n 30 "$tmp/build-static.err" 2>/dev/null
        return 1
    fi
    [[ -n "$static_bin" ]] && return 0
    if [[ -n "${VNETPROBE_BIN:-}" ]]; then
        static_bin=$VNETPROBE_BIN
    else
        static_bin=$("$pkg/build-static.sh" 2>"$tmp/build-static.err" | tail -n1) ||
            { static_failed=1; tail -n 30 "$tmp/build-static.err"; return 1; }
    fi
    if [[ ! -x "$static_bin" ]]; then
        echo "no binary at '$static_bin'" >>"$tmp/build-static.err"
        static_failed=1
        return 1
    fi
    static_bin=$(cd "$(dirname "$static_bin")" && pwd)/$(basename "$static_bin")
}

need_full() {
    [[ "${VNETPROBE_PACKAGING_FULL:-}" == 1 ]] || skip "set VNETPROBE_PACKAGING_FULL=1 (needs the Rust binary)"
}
need_root() {
    [[ $(id -u) -eq 0 ]] || skip "needs root"
}

# Starts a TCP listener on 127.0.0.1 that accepts and closes; prints its port.
tcp_listener() {
    local portfile="$tmp/tcp.port.$RANDOM"
    python3 - "$portfile" <<'PY' >/dev/null 2>&1 &
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
tmp = sys.argv[1] + ".tmp"
open(tmp, "w").write(str(s.getsockname()[1]))
os.rename(tmp, sys.argv[1])
while True:
    c, _ = s.accept()
    c.close()
PY
    echo $! >>"$pidfile"
    await_port "$portfile"
}

port_closed() {
    python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0 else 1)' "$1"
}

f_static_build() {
    need_full
    get_static_bin || fail "static build failed"
    echo "binary: $static_bin"
    if command -v file >/dev/null; then
        file -L "$static_bin" | tee /dev/stderr | grep -Eq 'statically linked|static-pie linked' ||
            fail "file(1) does not call it static"
    fi
    readelf -lW "$static_bin" | grep -q INTERP && fail "has a program interpreter"
    readelf -dW "$static_bin" | grep -q '(NEEDED)' && fail "has NEEDED entries: $(readelf -dW "$static_bin" | grep NEEDED)"
    # Runs with nothing else on the file system.
    local empty="$tmp/emptyroot" out
    mkdir -p "$empty"
    cp "$static_bin" "$empty/vnetprobe"
    if [[ $(id -u) -eq 0 ]]; then
        out=$(chroot "$empty" /vnetprobe --version 2>&1) || fail "--version in an empty chroot: $out"
    else
        out=$(unshare --map-root-user --root="$empty" /vnetprobe --version 2>&1) || fail "--version in an empty root: $out"
    fi
    grep -q "$(cargo_version)" <<<"$out" || fail "--version says '$out', Cargo.toml says $(cargo_version)"
    echo "$out"
}

f_static_probe_loopback() {
    need_full
    get_static_bin || fail "static build failed"
    local port rc=0
    port=$(tcp_listener) || fail "could not start a loopback listener"
    "$static_bin" probe tcp "127.0.0.1:$port" >"$tmp/probe.out" 2>&1 || rc=$?
    cat "$tmp/probe.out"
    [[ $rc -eq 0 ]] || fail "probe tcp 127.0.0.1:$port (listening): exit $rc, want 0"
    port_closed 1 || skip "something listens on 127.0.0.1:1"
    rc=0
    "$static_bin" probe tcp 127.0.0.1:1 >"$tmp/probe.out" 2>&1 || rc=$?
    cat "$tmp/probe.out"
    [[ $rc -eq 1 ]] || fail "probe tcp 127.0.0.1:1 (closed): exit $rc, want 1"
}

# dpkg, waiting for a lock held by someone else's apt-get (up to 2 minutes).
dpkg_retry() {
    local _ out rc
    for _ in $(seq 60); do
        rc=0
        out=$(dpkg "$@" 2>&1) || rc=$?
        if [[ $rc -ne 0 ]] && grep -q 'lock' <<<"$out"; then
            sleep 2
            continue
        fi
        echo "$out"
        return "$rc"
    done
    echo "$out"
    return 1
}

# With the package installed: the check, as the service runs it (user vnetprobe, its textfile
# in /var/lib/vnetprobe), then Debian's node_exporter on a loopback port reading its textfile
# directory, where the postinst's symlink must lead to the check's metrics.
textfile_for_node_exporter() {
    local exporter=/usr/bin/prometheus-node-exporter dir=/var/lib/prometheus/node-exporter
    if [[ ! -x $exporter || ! -d $dir ]]; then
        echo "prometheus-node-exporter is not installed (tests/run.sh installs it)"
        return 1
    fi
    [[ $(readlink "$dir/vnetprobe.prom") == /var/lib/vnetprobe/vnetprobe.prom ]] ||
        { echo "no symlink $dir/vnetprobe.prom -> /var/lib/vnetprobe/vnetprobe.prom"; return 1; }
    local readable rc=0 port
    readable=$(mktemp -d "${TMPDIR:-/tmp}/vnetprobe-textfile.XXXXXX")
    chmod 0755 "$readable"
    install -m 0644 "$fixtures/catalog.toml" "$readable/catalog.toml"
    runuser -u vnetprobe -- /usr/bin/vnetprobe check --config /etc/vnetprobe/config.toml \
        --catalog "$readable/catalog.toml" --no-discover --timeout 3s --output prometheus \
        --textfile /var/lib/vnetprobe/vnetprobe.prom >/dev/null 2>"$tmp/textfile.err" || rc=$?
    rm -rf "$readable"
    [[ $rc -le 1 ]] || { cat "$tmp/textfile.err"; echo "check as vnetprobe: exit $rc"; return 1; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$exporter" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults \
        --collector.textfile --collector.textfile.directory="$dir" >"$tmp/node-exporter.log" 2>&1 &
    echo $! >>"$pidfile"
    local _ scraped=""
    for _ in $(seq 50); do
        scraped=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null) && break
        sleep 0.1
    done
    grep -q '^vnetprobe_probe_success{' <<<"$scraped" ||
        { cat "$tmp/node-exporter.log"; echo "node_exporter does not export vnetprobe_probe_success"; return 1; }
    grep -qx 'node_textfile_scrape_error 0' <<<"$scraped" ||
        { grep textfile <<<"$scraped"; echo "node_exporter reports a textfile error"; return 1; }
}

f_deb_install_purge() {
    need_full
    need_root
    dpkg -s vnetprobe >/dev/null 2>&1 && skip "vnetprobe is already installed here; not touching it"
    get_static_bin || fail "static build failed"
    local deb out
    deb=$(VNETPROBE_BIN=$static_bin "$pkg/build-deb.sh" "$tmp/deb-full" 2>"$tmp/deb-full.err" | tail -n1) ||
        { cat "$tmp/deb-full.err"; fail "build-deb.sh failed"; }
    echo "deb: $deb"
    dpkg_retry -i "$deb" || { dpkg_retry -P vnetprobe >/dev/null 2>&1; fail "dpkg -i failed"; }
    local problems=()
    out=$(/usr/bin/vnetprobe --version 2>&1) || problems+=("vnetprobe --version failed: $out")
    getent passwd vnetprobe >/dev/null || problems+=("no vnetprobe user")
    [[ $(getent passwd vnetprobe | cut -d: -f6) == /nonexistent ]] || problems+=("vnetprobe home is not /nonexistent")
    [[ $(stat -c '%U:%G %a' /etc/vnetprobe/config.toml 2>/dev/null) == "root:vnetprobe 640" ]] ||
        problems+=("config.toml is $(stat -c '%U:%G %a' /etc/vnetprobe/config.toml 2>&1)")
    [[ -f /usr/share/man/man1/vnetprobe.1.gz ]] || problems+=("no man page")
    # Every page the binary knows (vnetprobe.1 and one per subcommand) is installed.
    local page
    for page in $(/usr/bin/vnetprobe man --dir "$tmp/pages"); do
        [[ -f /usr/share/man/man1/$page.gz ]] || problems+=("man page $page not installed")
        zgrep -q '^\.SH "EXIT STATUS"' "/usr/share/man/man1/$page.gz" 2>/dev/null || problems+=("$page has no EXIT STATUS")
    done
    [[ $(stat -c '%U:%G %a' /var/lib/vnetprobe 2>/dev/null) == "vnetprobe:vnetprobe 755" ]] ||
        problems+=("/var/lib/vnetprobe is $(stat -c '%U:%G %a' /var/lib/vnetprobe 2>&1)")
    textfile_for_node_exporter || problems+=("node_exporter does not serve the textfile (see above)")
    dpkg_retry -P vnetprobe || problems+=("dpkg -P failed")
    [[ -e /var/lib/vnetprobe ]] && problems+=("/var/lib/vnetprobe left after purge")
    [[ -L /var/lib/prometheus/node-exporter/vnetprobe.prom ]] && problems+=("textfile symlink left after purge")
    [[ -e /usr/bin/vnetprobe ]] && problems+=("/usr/bin/vnetprobe left after purge")
    [[ -e /etc/vnetprobe ]] && problems+=("/etc/vnetprobe left after purge")
    [[ -e /lib/systemd/system/vnetprobe.service ]] && problems+=("unit left after purge")
    getent passwd vnetprobe >/dev/null && problems+=("vnetprobe user left after purge")
    getent group vnetprobe >/dev/null && problems+=("vnetprobe group left after purge")
    dpkg -s vnetprobe >/dev/null 2>&1 && problems+=("dpkg still knows vnetprobe")
    if [[ ${#problems[@]} -gt 0 ]]; then
        printf '%s\n' "${problems[@]}"
        fail "${#problems[@]} problem(s)"
    fi
}

f_setup_script_real() {
    need_full
    get_static_bin || fail "static build failed"
    port_closed 1 || skip "something listens on 127.0.0.1:1 (fixtures/catalog.toml expects it closed)"
    local logs="$tmp/real-setup" rc=0
    local check_args=(-- --catalog "$fixtures/catalog.toml" --no-discover --timeout 3s)
    # --wait 2s: the closed port is retried (bounded) and check.json counts the attempts.
    "$setup_script" --binary "$static_bin" --mode fail --wait 2s --log-dir "$logs/fail" "${check_args[@]}" \
        >"$tmp/real-fail.out" 2>&1 || rc=$?
    cat "$tmp/real-fail.out"
    [[ $rc -eq 1 ]] || fail "fail mode: exit $rc, want 1"
    python3 - "$logs/fail/check.json" <<'PY' || fail "--wait did not retry the failing target"
import json, sys
r = [r for r in json.load(open(sys.argv[1]))["results"] if r["id"] == "test-closed-loopback"][0]
assert r["wait"]["attempts"] >= 2 and r["wait"]["reachable_after_ms"] is None, r["wait"]
PY
    rc=0
    "$setup_script" --binary "$static_bin" --mode warn --wait 0 --log-dir "$logs/warn" "${check_args[@]}" \
        >"$tmp/real-warn.out" 2>&1 || rc=$?
    cat "$tmp/real-warn.out"
    [[ $rc -eq 0 ]] || fail "warn mode: exit $rc, want 0"
    grep -q 'test-closed-loopback' "$tmp/real-warn.out" || fail "warn mode does not name the failing target"
    local d
    for d in fail warn; do
        [[ -s "$logs/$d/check.txt" ]] || fail "$d: no check.txt in --log-dir"
        python3 - "$logs/$d/check.json" <<'PY' || fail "$d: check.json does not report the closed port as a failure"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["fail"] >= 1, r["summary"]
hit = [x for x in r["results"] if x["id"] == "test-closed-loopback"]
assert hit and hit[0]["status"] == "fail", hit
assert hit[0]["error"]["kind"] == "tcp_refused", hit[0]["error"]
PY
    done
    # A config error is exit 2 in both modes.
    for d in fail warn; do
        rc=0
        "$setup_script" --binary "$static_bin" --mode "$d" --log-dir "$logs/usage-$d" \
            -- --catalog "$tmp/no-such-catalog.toml" --no-discover >/dev/null 2>&1 || rc=$?
        [[ $rc -eq 2 ]] || fail "$d mode with a missing catalog: exit $rc, want 2"
    done
}

f_exporter_metric_names() {
    need_full
    get_static_bin || fail "static build failed"
    local out="$tmp/metrics.prom" rc=0 name
    "$static_bin" check --catalog "$fixtures/catalog.toml" --no-discover --timeout 3s --output prometheus \
        >"$out" 2>"$tmp/metrics.err" || rc=$?
    [[ $rc -le 1 ]] || { cat "$tmp/metrics.err"; fail "check --output prometheus: exit $rc"; }
    if command -v promtool >/dev/null; then
        promtool check metrics <"$out" || fail "promtool check metrics"
    fi
    for name in vnetprobe_probe_success vnetprobe_probe_duration_seconds vnetprobe_probe_error_info \
        vnetprobe_last_run_timestamp_seconds vnetprobe_run_duration_seconds vnetprobe_targets; do
        grep -q "^${name}[{ ]" "$out" || fail "the exporter output lacks $name"
    done
    grep -q '^vnetprobe_probe_success{.*required="true"' "$out" || fail "vnetprobe_probe_success has no required label"
    grep -q '^vnetprobe_probe_error_info{.*kind="tcp_refused"' "$out" || fail "no error_info kind=tcp_refused"
}

f_config_template_parses() {
    need_full
    get_static_bin || fail "static build failed"
    local live="$tmp/config.real.toml" rc=0
    uncomment_config "$live"
    # Point the file settings at files that exist; keep every key.
    : >"$tmp/web.yml"
    sed -i -E \
        -e "s#^catalog = .*#catalog = [\"$fixtures/catalog.toml\"]#" \
        -e "s#^ca-file = .*#ca-file = \"$(ls /etc/ssl/certs/ca-certificates.crt 2>/dev/null || echo /dev/null)\"#" \
        -e "s#^web-config-file = .*#web-config-file = \"$tmp/web.yml\"#" \
        -e "s#^profiles = .*#profiles = []#" \
        "$live"
    # `context` probes nothing; --no-discover keeps it off IMDS.
    "$static_bin" context --config "$live" --no-discover --output json >"$tmp/context.out" 2>&1 || rc=$?
    cat "$tmp/context.out"
    [[ $rc -eq 0 ]] || fail "vnetprobe rejects the uncommented config template (exit $rc)"
}

# ---------------------------------------------------------------------------
cd "$root" || exit 2
run_test "promtool check rules" t_promtool_check_rules
run_test "promtool test rules" t_promtool_test_rules
run_test "every alert has fire and not-fire tests" t_rules_cover_alerts
run_test "rules query only contract metrics" t_rules_metrics_in_contract
run_test "dashboard: datasource variable, \$instance, contract metrics" t_dashboard
run_test "units: systemd-analyze security exposure <= $MAX_EXPOSURE" t_units_exposure
run_test "units: systemd-analyze verify" t_units_verify
run_test "units: commands, exit status, paths" t_units_contract
run_test "config template: fully commented, every key, valid TOML" t_config_template
run_test "scripts: bash -n / sh -n, executable" t_script_syntax
run_test "scripts: shellcheck" t_shellcheck
run_test "fleet job YAML" t_fleet_job
run_test "setup script: exit semantics (fake binary)" t_setup_exit_semantics
run_test "setup script: argument pass-through and errors" t_setup_arguments
run_test "setup script: --binary URL over loopback, --sha256" t_setup_binary_url
run_test "setup script: --install-service (VNETPROBE_INSTALL_ROOT)" t_setup_install_service
run_test "deb: layout, version, conffiles, md5sums (fake binary)" t_deb_layout
run_test "deb: fails clearly without 'vnetprobe man'" t_deb_needs_generators
if [[ "${VNETPROBE_PACKAGING_FULL:-}" == 1 ]]; then
    if [[ -n "${VNETPROBE_BIN:-}" ]]; then
        echo "# full tier: using VNETPROBE_BIN=$VNETPROBE_BIN" >&3
    else
        echo "# full tier: building the static binary" >&3
    fi
    get_static_bin >/dev/null 2>&1
fi
run_test "full: static build is static and runs in an empty root" f_static_build
run_test "full: static binary probes a loopback listener" f_static_probe_loopback
run_test "full: deb installs, runs, purges cleanly" f_deb_install_purge
run_test "full: setup script fail/warn against a closed loopback port" f_setup_script_real
run_test "full: exporter emits the metrics rules and dashboard use" f_exporter_metric_names
run_test "full: vnetprobe accepts the config template" f_config_template_parses

if [[ $skipped -gt 0 ]]; then
    echo "($skipped skipped)"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
