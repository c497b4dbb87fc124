#!/usr/bin/env bash
# merge at fleet scale: 1,000 reports of 60 targets (issue 25.2: <= 0.5 s, <= 64 MB) and a
# 400-node full mesh of peer checks, 3 paths a pair (issue 27.4: < 1 s). Prints wall time and
# peak RSS (GNU time) of each, median of 3.
#   benches/merge_bench.sh [BINARY]   (default: target/release/vnetprobe)
set -euo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}/release/vnetprobe}
dir=$(mktemp -d /tmp/vp-merge-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
def result(i, fail, kind="tcp_refused"):
    return {"id": f"t{i}", "name": f"target {i}", "protocol": "tcp", "host": f"svc{i}.example.net",
            "port": 443, "profiles": ["no-public-ip"], "required": True, "expect": "reachable",
            "status": "fail" if fail else "pass",
            "error": {"kind": kind, "message": "connection refused"} if fail else None,
            "via_proxy": None, "hint": "Allow outbound TCP 443." if fail else None,
            "addresses": ["10.0.0.4"], "phases_ms": {"dns": 1.2, "connect": 0.4}, "why": "w" * 80}
os.makedirs(f"{d}/fleet"); os.makedirs(f"{d}/mesh")
for n in range(1000):
    bad13, bad45 = n % 14 == 0, n % 83 == 0
    res = [result(i, (i == 13 and bad13) or (i == 45 and bad45)) for i in range(60)]
    r = {"version": 1, "node": f"node-{n:04}", "started_at": "2026-12-04T10:00:00Z", "duration_ms": 900,
         "context": {"region": "westeurope", "subnet": "10.0.2.0/24" if bad13 else "10.0.1.0/24", "zone": str(n % 3 + 1)},
         "summary": {"pass": 60, "fail": 0, "skip": 0, "required_fail": int(bad13 or bad45)}, "results": res}
    json.dump(r, open(f"{d}/fleet/node-{n:04}.json", "w"), indent=2)
N = 400
addr = lambda j: f"10.9.{j // 200}.{j % 200 + 1}"
for n in range(N):
    res = []
    for j in range(N):
        if j == n: continue
        for proto, port in (("tcp", 445), ("tcp", 29500), ("udp", 5831)):
            dark = j == 7 and proto == "tcp" and port == 445
            res.append({"id": f"peer-{addr(j)}-{proto}-{port}", "name": "p", "protocol": proto, "host": addr(j),
                        "port": port, "profiles": ["peer"], "required": True, "expect": "reachable",
                        "status": "fail" if dark else "pass",
                        "error": {"kind": "tcp_timeout", "message": "m"} if dark else None, "via_proxy": None, "hint": None,
                        **({} if dark else {"responder": {"node": f"node-{j:03}", "authenticated": True}})})
    r = {"version": 1, "node": f"node-{n:03}", "started_at": "2026-12-04T10:00:00Z", "duration_ms": 900,
         "context": {}, "summary": {"pass": 0, "fail": 0, "skip": 0, "required_fail": 0}, "results": res}
    json.dump(r, open(f"{d}/mesh/node-{n:03}.json", "w"))
PY
measure() { # label, files...
    local label=$1; shift
    local runs=()
    for _ in 1 2 3; do
        /usr/bin/time -f '%e %M' -o "$dir/t" "$bin" merge "$@" > "$dir/out" || true
        runs+=("$(tail -n1 "$dir/t")")
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p | awk -v l="$label" '{printf "%-34s %6.2f s  %6.1f MB peak RSS (median of 3)\n", l, $1, $2/1024}'
}
echo "vnetprobe: $("$bin" --version | head -1)"
echo "input: 1,000 reports of 60 targets ($(du -sh "$dir/fleet" | cut -f1)); 400-node mesh, 3 paths a pair ($(du -sh "$dir/mesh" | cut -f1))"
measure "merge 1,000 reports (table)" "$dir"/fleet/*.json
measure "merge 1,000 reports (json)" --output json "$dir"/fleet/*.json
measure "merge 400-node full mesh (table)" "$dir"/mesh/*.json
"$bin" merge "$dir"/fleet/*.json | head -12
"$bin" merge "$dir"/mesh/*.json | tail -6
