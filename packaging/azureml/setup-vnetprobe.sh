#!/usr/bin/env bash
# setup-vnetprobe.sh: Azure ML compute-instance setup script that proves the
# node's network paths work before anyone uses it.
#
# Usage:
#   setup-vnetprobe.sh [--binary PATH_OR_URL] [--sha256 HEX] [--mode fail|strict|warn]
#                      [--wait DUR] [--log-dir DIR] [--profile NAME]... [--install-service]
#                      [-- EXTRA CHECK ARGS...]
#
#   --binary PATH_OR_URL  the static vnetprobe binary: a local path (e.g. next to
#                         this script on the workspace file share) or an
#                         http(s) URL fetched with curl, which honours
#                         https_proxy/HTTPS_PROXY/NO_PROXY. Default: vnetprobe
#                         from PATH.
#   --sha256 HEX          refuse the binary unless its SHA-256 matches.
#   --mode fail|strict|warn  what a failed required target does (default fail);
#                         strict also fails what was not confirmed (vnetprobe
#                         check --strict): a pass the node cannot prove and a
#                         required target skipped for a missing variable.
#   --wait DUR            how long to wait for the network to come up (default
#                         2m; 0 judges the first attempt): failing targets are
#                         re-run with backoff until they pass or DUR is over
#                         (vnetprobe check --wait), and check.json says after
#                         how long each became reachable.
#   --log-dir DIR         where results go (default /var/log/vnetprobe):
#                           check.json  the report (vnetprobe check --output json)
#                           check.txt   the same run's results as a table
#                           check.err   vnetprobe's stderr
#   --profile NAME        passed through to vnetprobe check (repeatable).
#   --install-service     also install the binary as /usr/local/bin/vnetprobe,
#                         vnetprobe.service (the exporter, 127.0.0.1:9834) and
#                         a minimal /etc/vnetprobe/config.toml, and start it.
#                         Needs vnetprobe.service next to this script (or the
#                         repository layout, ../../systemd/).
#   -- ARGS...            passed to vnetprobe check as they are, e.g.
#                         -- --set workspace_name=myws --timeout 10s
#                         (not --output: the script runs json and table)
#
# Exit status (Azure ML fails the compute-instance creation on non-zero):
#   mode fail (default)  0 every required target that ran passed; 1 a required
#                        target failed (vnetprobe's own code: provisioning
#                        fails). Unconfirmed passes (UDP 5831 silence, a
#                        sign-in wall) and required targets not checked (a
#                        variable is missing) are listed but let through.
#   mode strict          as fail, but those are failures too (exit 1).
#   mode warn            0 even when required targets failed; the failures are
#                        printed (they land in the setup-script log) and kept in
#                        --log-dir.
#   both modes           2 when vnetprobe exits 2 (usage, config or catalog
#                        error: the check itself is broken, so nothing was
#                        proved), when this script's arguments are wrong, or
#                        when the binary cannot be fetched or verified; any
#                        other unexpected vnetprobe status (a crash) is
#                        passed through.
#
# The table in check.txt comes from a second `vnetprobe check --output table`
# run with the same arguments (without --wait: the network had its time); the
# exit status always comes from the JSON run.
#
# Environment (for tests and image builds): VNETPROBE_INSTALL_ROOT=DIR installs
# the service files under DIR instead of / and skips useradd and systemctl.
set -uo pipefail

prog=setup-vnetprobe
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 2; }

binary=""
sha256=""
mode=fail
wait=2m
log_dir=/var/log/vnetprobe
install_service=0
profiles=()
extra=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) need_value "$@"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --sha256) need_value "$@"; sha256=$2; shift 2 ;;
        --sha256=*) sha256=${1#*=}; shift ;;
        --mode) need_value "$@"; mode=$2; shift 2 ;;
        --mode=*) mode=${1#*=}; shift ;;
        --wait) need_value "$@"; wait=$2; shift 2 ;;
        --wait=*) wait=${1#*=}; shift ;;
        --log-dir) need_value "$@"; log_dir=$2; shift 2 ;;
        --log-dir=*) log_dir=${1#*=}; shift ;;
        --profile) need_value "$@"; profiles+=("$2"); shift 2 ;;
        --profile=*) profiles+=("${1#*=}"); shift ;;
        --install-service) install_service=1; shift ;;
        -h | --help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown argument '$1' (vnetprobe check options go after --)" ;;
    esac
done

case "$mode" in
    fail | strict | warn) ;;
    *) die "--mode must be fail, strict or warn, not '$mode'" ;;
esac
[[ -z "$log_dir" ]] && die "--log-dir must not be empty"
if [[ -n "$sha256" && ! "$sha256" =~ ^[0-9a-fA-F]{64}$ ]]; then
    die "--sha256 must be 64 hex digits"
fi
for arg in "${extra[@]}"; do
    case "$arg" in
        --output | --output=* | --textfile | --textfile=*)
            die "$arg after --: this script chooses the outputs (check.json, check.txt)" ;;
        --wait | --wait=*)
            die "$arg after --: use the script's own --wait DUR" ;;
    esac
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
install_root=${VNETPROBE_INSTALL_ROOT:-}

mkdir -p "$log_dir" || die "cannot create --log-dir $log_dir"
log_dir=$(cd "$log_dir" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/vnetprobe-setup.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT

# --- the binary ----------------------------------------------------------
src="$work/vnetprobe.download"
case "$binary" in
    http://* | https://*)
        command -v curl >/dev/null || die "curl is needed to fetch $binary"
        log "fetching $binary"
        # curl picks the proxy from https_proxy/HTTPS_PROXY/ALL_PROXY/NO_PROXY.
        curl -fsSL --retry 3 --connect-timeout 20 --max-time 300 -o "$src" "$binary" ||
            die "could not download $binary (is the proxy or firewall letting it through?)"
        ;;
    "")
        found=$(command -v vnetprobe) || die "no --binary given and vnetprobe is not in PATH"
        cp "$found" "$src" || die "cannot copy $found"
        ;;
    *)
        [[ -f "$binary" ]] || die "--binary $binary: no such file"
        cp "$binary" "$src" || die "cannot copy $binary"
        ;;
esac

if [[ -n "$sha256" ]]; then
    got=$(sha256sum "$src" | cut -d' ' -f1)
    [[ "${got,,}" == "${sha256,,}" ]] || die "SHA-256 mismatch for ${binary:-vnetprobe}: expected $sha256, got $got"
fi

# Files on the workspace share often lack the exec bit (or sit on a noexec
# mount): always run a private, executable copy.
bin="$work/vnetprobe"
install -m 0755 "$src" "$bin" || die "cannot install the binary into $work"
if ! version=$("$bin" --version 2>&1); then
    die "the binary does not run ($version)"
fi
log "using $version"

# --- optional service install ---------------------------------------------
find_file() {
    local name=$1 dir
    for dir in "$script_dir" "$script_dir/../../systemd" "$script_dir/.."; do
        if [[ -f "$dir/$name" ]]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

install_service() {
    local bindir="$install_root/usr/local/bin"
    local unitdir="$install_root/etc/systemd/system"
    local confdir="$install_root/etc/vnetprobe"
    local unit template

    unit=$(find_file vnetprobe.service) || die "--install-service: vnetprobe.service not found next to $0"

    mkdir -p "$bindir" "$unitdir" "$confdir" || die "cannot create install directories under ${install_root:-/}"
    # Rename into place: replacing a running binary in place fails (ETXTBSY).
    if ! { install -m 0755 "$bin" "$bindir/.vnetprobe.new" &&
        mv -f "$bindir/.vnetprobe.new" "$bindir/vnetprobe"; }; then
        die "cannot install $bindir/vnetprobe"
    fi
    sed 's#/usr/bin/vnetprobe#/usr/local/bin/vnetprobe#g' "$unit" >"$unitdir/vnetprobe.service" ||
        die "cannot write $unitdir/vnetprobe.service"
    chmod 0644 "$unitdir/vnetprobe.service"

    if [[ ! -e "$confdir/config.toml" ]]; then
        {
            echo "# Written by setup-vnetprobe.sh. Keys: see vnetprobe(1)."
            if [[ ${#profiles[@]} -gt 0 ]]; then
                printf 'profiles = ['
                local i
                for i in "${!profiles[@]}"; do
                    [[ $i -gt 0 ]] && printf ', '
                    printf '"%s"' "${profiles[$i]}"
                done
                printf ']\n'
            fi
            if template=$(find_file config.toml); then
                echo
                grep -v '^#profiles = ' "$template"
            fi
        } >"$confdir/config.toml" || die "cannot write $confdir/config.toml"
        chmod 0640 "$confdir/config.toml"
    fi

    if [[ -n "$install_root" ]]; then
        log "installed under $install_root (VNETPROBE_INSTALL_ROOT): not creating users or starting units"
        return 0
    fi
    if ! getent passwd vnetprobe >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin vnetprobe || die "cannot create the vnetprobe system user"
    fi
    chgrp vnetprobe "$confdir/config.toml" || true
    if [[ -d /run/systemd/system ]]; then
        if ! { systemctl daemon-reload &&
            systemctl enable vnetprobe.service >/dev/null 2>&1 &&
            systemctl restart vnetprobe.service; }; then
            die "vnetprobe.service did not start (journalctl -u vnetprobe.service)"
        fi
        log "vnetprobe.service is running: metrics on http://127.0.0.1:9834/metrics"
    else
        log "systemd is not running here: vnetprobe.service installed but not started"
    fi
}

if [[ $install_service -eq 1 ]]; then
    install_service
fi

# --- the check ---------------------------------------------------------------
check_args=(check)
for p in "${profiles[@]}"; do
    check_args+=(--profile "$p")
done
check_args+=("${extra[@]}")
[[ $mode == strict ]] && check_args+=(--strict)

wait_args=()
[[ $wait == 0 || $wait == 0s ]] || wait_args=(--wait "$wait")
log "running: vnetprobe ${check_args[*]} ${wait_args[*]} --output json"
rc=0
"$bin" "${check_args[@]}" "${wait_args[@]}" --output json >"$log_dir/check.json" 2>"$log_dir/check.err" || rc=$?

if [[ $rc -eq 2 ]]; then
    log "vnetprobe exited 2 (usage, config or catalog error): nothing was proved"
    sed 's/^/    /' "$log_dir/check.err" >&2
    exit 2
fi

trc=0
"$bin" "${check_args[@]}" --output table >"$log_dir/check.txt" 2>>"$log_dir/check.err" || trc=$?
cat "$log_dir/check.txt"
if [[ $trc -ne 0 && $trc -ne 1 ]]; then
    log "warning: the table run exited $trc (see $log_dir/check.err)"
fi

# The failing targets, from the JSON report (the authoritative run).
print_failures() {
    if command -v python3 >/dev/null; then
        python3 - "$log_dir/check.json" <<'PY' && return 0
import json, sys
report = json.load(open(sys.argv[1]))
for r in report.get("results", []):
    if r.get("status") != "fail":
        continue
    err = r.get("error") or {}
    where = r.get("host") or ""
    if r.get("port") is not None:
        where += ":%s" % r["port"]
    req = "required" if r.get("required") else "optional"
    print("  FAIL %s (%s %s, %s): %s %s" % (r.get("id"), r.get("protocol"), where, req,
          err.get("kind", "?"), err.get("message", "")))
    if r.get("hint"):
        print("       fix: %s" % r["hint"])
PY
    fi
    log "(see $log_dir/check.txt for the failing targets)"
}

# What passed without proof or was not checked: let through outside strict mode, never hidden.
print_unconfirmed() {
    command -v python3 >/dev/null || return 0
    python3 - "$log_dir/check.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for r in report.get("results", []):
    if r.get("unverified"):
        print("  UNCONFIRMED %s: %s" % (r.get("id"), r.get("note") or ""))
    elif r.get("status") == "skip" and r.get("required") and r.get("direction", "outbound") == "outbound":
        print("  NOT CHECKED %s: %s" % (r.get("id"), r.get("skip_reason") or ""))
PY
}

case $rc in
    0)
        log "all required network paths that ran work (results in $log_dir)"
        unconfirmed=$(print_unconfirmed)
        if [[ -n $unconfirmed ]]; then
            log "let through without proof (use --mode strict to fail on these):"
            printf '%s\n' "$unconfirmed" >&2
        fi
        exit 0
        ;;
    1)
        log "required network paths FAILED:"
        print_failures >&2
        if [[ $mode == warn ]]; then
            log "mode warn: not failing the setup (results in $log_dir)"
            exit 0
        fi
        log "mode fail: failing the setup (results in $log_dir; use --mode warn to only report)"
        exit 1
        ;;
    *)
        log "vnetprobe exited $rc unexpectedly:"
        sed 's/^/    /' "$log_dir/check.err" >&2
        exit "$rc"
        ;;
esac
