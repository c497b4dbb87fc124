#!/usr/bin/env bash
# Runs vnetprobe inside the lab's compute namespace the way tests/lab_scenarios.rs does: the lab's
# DNS server, its CA as the public web PKI, and the simulated deployment's variables.
# Usage: tests/lab/vnetprobe.sh check|probe|catalog|context [ARGS...]
# The binary is $VNETPROBE (default target/debug/vnetprobe); proxy variables pass through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -f "$STATE/lab.env" ] || die "the lab is not up (tests/lab/up.sh)"
bin=${VNETPROBE:-$LAB_DIR/../../target/debug/vnetprobe}
[ -x "$bin" ] || die "no binary at $bin (cargo build, or set VNETPROBE)"
[ $# -gt 0 ] || set -- check
sub=$1; shift
args=()
case $sub in
    check|catalog|context) for v in $LAB_VARIABLES; do args+=(--set "$v"); done ;;
esac
# The lab's DNS server unless the arguments name one (azure-firewall: --dns-server 10.77.1.1,
# the firewall's DNS proxy).
case $sub in
    check|probe) [[ " $* " == *" --dns-server "* ]] || args+=(--dns-server "$DNS_IP") ;;
esac
exec ip netns exec "$NS_COMPUTE" env VNETPROBE_PUBLIC_ROOTS="$STATE/pki/public-ca.pem" \
    "$bin" "$sub" "${args[@]}" "$@"
