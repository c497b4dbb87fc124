#!/usr/bin/env bash
# Benchmark of one `vnetprobe check` run (a figure printer, not a test): 500 TCP targets on
# loopback inside a network namespace made here, half of them black-holed by nftables, with
# --timeout 1s. Prints wall time, CPU time, peak RSS, and the DNS queries dnsmasq received
# against the number of distinct names. Needs root (namespace, nftables) and dnsmasq.
#   usage: benches/check_bench.sh [path/to/vnetprobe]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/namespace.sh
source benches/namespace.sh "$@"
# Everything to 127.0.0.2 is dropped on input: an NSG deny, silent.
printf 'table inet nsg {\n chain input { type filter hook input priority 0; ip daddr 127.0.0.2 drop; }\n}\n' |
    ip netns exec "$NS" nft -f -

NAMES=50      # distinct names per side
PORTS=5       # ports per name: 2 x 50 x 5 = 500 targets
BASE=20000
{
    echo "port=5353"; echo "listen-address=127.0.0.1"; echo "bind-interfaces"; echo "no-resolv"; echo "no-hosts"
    echo "cache-size=0"; echo "log-queries"; echo "log-facility=$WORK/dns.log"; echo "local=/bench.test/"
    for i in $(seq 1 $NAMES); do
        echo "host-record=open$i.bench.test,127.0.0.1"
        echo "host-record=hole$i.bench.test,127.0.0.2"
    done
} >"$WORK/dnsmasq.conf"
ip netns exec "$NS" dnsmasq --conf-file="$WORK/dnsmasq.conf" --pid-file="$WORK/dnsmasq.pid" --user=root
sleep 0.3
cat "$WORK/dnsmasq.pid" >>"$WORK/pids"

# Listeners for the open side.
listen "$BASE" "$PORTS"

{
    for side in open hole; do
        for i in $(seq 1 $NAMES); do
            ports=$(seq -s, $BASE $((BASE + PORTS - 1)))
            printf '[[target]]\nid = "%s-%d"\nname = "%s %d"\nprotocol = "tcp"\nhost = "%s%d.bench.test"\nports = [%s]\nprofiles = ["internet"]\nwhy = "bench"\nfix = "bench"\n\n' \
                "$side" "$i" "$side" "$i" "$side" "$i" "$ports"
        done
    done
} >"$WORK/catalog.toml"

ip netns exec "$NS" /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" \
    env VNETPROBE_DISCOVER=0 "$BIN" check --catalog "$WORK/catalog.toml" --dns-server 127.0.0.1:5353 \
    --timeout 1s --concurrency 512 --output json >"$WORK/report.json" || true
read -r wall user sys rss < <(tail -n 1 "$WORK/time")
python3 - "$WORK/report.json" "$WORK/dns.log" "$wall" "$user" "$sys" "$rss" "$NAMES" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
wall, user, sys_, rss, names = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
res = rep["results"]
kinds = {}
for r in res:
    k = r["status"] if not r.get("error") else r["error"]["kind"]
    kinds[k] = kinds.get(k, 0) + 1
queries = [l for l in open(sys.argv[2]) if ": query[" in l]
distinct = {l.split()[-3] for l in queries}
print(f"targets:            {len(res)}  outcomes {kinds}")
print(f"wall time:          {wall:.2f} s   (timeout 1 s)")
print(f"cpu time:           {user + sys_:.2f} s (user {user:.2f}, sys {sys_:.2f})")
print(f"peak RSS:           {rss / 1024:.1f} MiB")
print(f"dns queries:        {len(queries)} for {len(distinct)} distinct names (expected {2 * len(distinct)}: one A and one AAAA per name)")
PY
