#!/usr/bin/env bash
# Benchmark of how `vnetprobe check` grows with the catalog (a figure printer, not a test):
# 500, 2,000 and 10,000 TCP targets on loopback, inside a network namespace made here, with the
# default concurrency (32). Two catalog shapes: 100 ports per entry (few entries, many targets)
# and one port per entry (one [[target]] table each, so catalog parsing is measured too).
# Prints wall time, CPU time (user + sys) and peak RSS of the median of three runs, and the time
# to load a catalog of 4,000 and 16,000 entries (`vnetprobe catalog`, which probes nothing).
# Needs root (namespace).
#   usage: benches/scale_bench.sh [path/to/vnetprobe]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/namespace.sh
source benches/namespace.sh "$@"
BASE=20000
PORTS=100
listen "$BASE" "$PORTS"

# catalog SHAPE N FILE: N targets; SHAPE "ports" = entries of $PORTS ports, "entries" = one each.
catalog() {
    python3 - "$1" "$2" "$BASE" "$PORTS" >"$3" <<'PY'
import sys
shape, n, base, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
entries, ports = (n // per, list(range(base, base + per))) if shape == "ports" else (n, None)
for i in range(entries):
    p = ports if ports else [base + i % per]
    print(f'[[target]]\nid = "t-{i}"\nname = "target {i}"\nprotocol = "tcp"\nhost = "127.0.0.1"\n'
          f'ports = [{", ".join(map(str, p))}]\nprofiles = ["internet"]\nwhy = "Scale benchmark"\n'
          f'fix = "Allow outbound TCP on loopback"\n')
PY
}

# measure LABEL ARGS...: runs the binary in the namespace three times and prints the figures of
# the median run (by CPU time): one run on a 2-core machine is at the mercy of whatever else runs.
measure() {
    local label=$1; shift
    : >"$WORK/runs"
    for _ in 1 2 3; do
        ip netns exec "$NS" /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" \
            env VNETPROBE_DISCOVER=0 "$BIN" "$@" >"$WORK/out" 2>"$WORK/err" || true
        tail -n 1 "$WORK/time" >>"$WORK/runs"
    done
    awk '{ print $2 + $3, $0 }' "$WORK/runs" | sort -n | sed -n 2p | cut -d' ' -f2- |
        awk -v label="$label" '{
        printf "%-34s wall %6.2f s   cpu %5.2f s (user %5.2f, sys %5.2f)   peak RSS %6.1f MiB\n",
            label, $1, $2 + $3, $2, $3, $4 / 1024 }'
}

echo "binary: $BIN"
for shape in ports entries; do
    for n in 500 2000 10000; do
        catalog "$shape" "$n" "$WORK/c.toml"
        measure "check, $n targets ($shape)" check --config /dev/null --catalog "$WORK/c.toml" \
            --timeout 2s --output json
        python3 - "$WORK/out" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, n = r["summary"], int(sys.argv[2])
assert len(r["results"]) == n and s["pass"] == n, f"expected {n} passes: {s}"
PY
    done
done
for n in 4000 16000; do
    catalog entries "$n" "$WORK/c.toml"
    measure "catalog load, $n entries" catalog --config /dev/null --catalog "$WORK/c.toml" --output json
done
