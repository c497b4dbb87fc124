#!/usr/bin/env bash
# What `check --trace` costs (issue 22; a figure printer, not a test): 50 failing TCP targets
# (one port each) through the router namespaces of tests/lab/routers.sh, with a firewall two
# hops on that drops them (scenario fw-drop: hop 1 answers, then silence, the slowest trace, as
# every TTL waits its share of the budget), --timeout 1s. Prints wall time and CPU time (user +
# sys) of `check` and of `check --trace`, median of 3, and the difference; then the same with
# the drop before the first hop (first-hop-drop: no TTL answered), and fw-drop again with hop 1
# at Linux's default ICMP rate limit (what the traces lose). Needs root, ip netns, nft.
#   usage: benches/trace_bench.sh [path/to/vnetprobe]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --locked
    BIN=${CARGO_TARGET_DIR:-target}/release/vnetprobe
fi
BIN=$(readlink -f "$BIN")
PREFIX=vptrb-$$
WORK=$(mktemp -d)
trap 'bash tests/lab/routers.sh down "$PREFIX"; rm -rf "$WORK"' EXIT
bash tests/lab/routers.sh up "$PREFIX"

TARGETS=50
BASE=20000
for i in $(seq 0 $((TARGETS - 1))); do
    printf '[[target]]\nid = "path-%d"\nname = "path %d"\nprotocol = "tcp"\nhost = "10.79.3.2"\nports = [%d]\nprofiles = ["internet"]\nwhy = "bench"\nfix = "bench"\n\n' \
        "$i" "$i" $((BASE + i))
done >"$WORK/catalog.toml"

# run LABEL ARGS...: median of 3 of wall and CPU seconds, as "wall cpu"; the last report kept.
run() {
    local label=$1; shift
    : >"$WORK/$label.times"
    for _ in 1 2 3; do
        ip netns exec "$PREFIX-c" /usr/bin/time -f '%e %U %S' -o "$WORK/time" \
            env VNETPROBE_DISCOVER=0 "$BIN" check --catalog "$WORK/catalog.toml" --timeout 1s \
            --output json "$@" >"$WORK/$label.json" || true
        tail -n 1 "$WORK/time" | awk '{printf "%.2f %.2f\n", $1, $2 + $3}' >>"$WORK/$label.times"
    done
    sort -n "$WORK/$label.times" | sed -n 2p
}

echo "vnetprobe: $("$BIN" --version | head -1)"
echo "$TARGETS TCP targets, --timeout 1s, routers of tests/lab/routers.sh"
# The last round puts hop 1 back to Linux's default ICMP rate limit (1000 ms per destination,
# after a small burst): 50 paths' TTL 1 probes reach it at once, and most go unanswered.
for scenario in fw-drop first-hop-drop fw-drop-ratelimited; do
    if [ "$scenario" = fw-drop-ratelimited ]; then
        ip netns exec "$PREFIX-r1" sysctl -qw net.ipv4.icmp_ratelimit=1000
        bash tests/lab/routers.sh scenario "$PREFIX" fw-drop
    else
        bash tests/lab/routers.sh scenario "$PREFIX" "$scenario"
    fi
    read -r wall cpu < <(run plain)
    read -r twall tcpu < <(run traced --trace)
    python3 - "$WORK/plain.json" "$WORK/traced.json" "$scenario" "$wall" "$cpu" "$twall" "$tcpu" <<'PY'
import json, sys
plain, traced = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
scenario, wall, cpu, twall, tcpu = sys.argv[3], *map(float, sys.argv[4:8])
kinds = {}
for r in plain["results"]:
    k = r["error"]["kind"] if r.get("error") else r["status"]
    kinds[k] = kinds.get(k, 0) + 1
ended = {}
for r in traced["results"]:
    t = r.get("trace") or {}
    e = t.get("ended", "not traced")
    if t.get("at"):
        e += " " + t["at"]["address"]
    ended[e] = ended.get(e, 0) + 1
flagged = sum(any("rate limit" in w for w in r.get("warnings", [])) for r in traced["results"])
print(f"\n{scenario}: outcomes {kinds}; traces {ended}; {flagged} flagged as maybe rate-limited")
print(f"  check           wall {wall:5.2f} s   cpu {cpu:5.2f} s   (median of 3)")
print(f"  check --trace   wall {twall:5.2f} s   cpu {tcpu:5.2f} s")
print(f"  extra           wall {twall - wall:+5.2f} s   cpu {tcpu - cpu:+5.2f} s   (bound: one --timeout, 1 s, of wall)")
causes = [c["message"] for c in traced.get("causes", [])]
print(f"  causes: {causes}")
PY
done
