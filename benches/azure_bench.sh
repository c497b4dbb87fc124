#!/usr/bin/env bash
# The cost of Azure's service tags in a check (issue 21: <= 50 ms and <= 20 MB peak RSS added):
# `check --service-tags FILE` (the real 4 MB weekly download) against the same check without it.
# The run: 60 DNS targets answered by a dnsmasq on loopback with public addresses taken from 60
# tags of the file, so every address is labelled (no traffic leaves loopback). Prints wall time
# and peak RSS (GNU time) of each, median of 7, and the difference.
#   benches/azure_bench.sh [BINARY] [SERVICE_TAG_FILE]
#   (defaults: target/release/vnetprobe, ../shared/data/ServiceTags_Public_20251106.json)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$here/target}/release/vnetprobe}
tags=${2:-$here/../shared/data/ServiceTags_Public_20251106.json}
[ -f "$tags" ] || tags=/work/shared/data/ServiceTags_Public_20251106.json
command -v dnsmasq >/dev/null || { echo "azure_bench: needs dnsmasq" >&2; exit 1; }
dir=$(mktemp -d /tmp/vp-azure-bench.XXXXXX)
dns_pid=
trap '[ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$dir" "$tags" "$port" <<'PY'
import ipaddress, json, sys
d, tags, port = sys.argv[1], sys.argv[2], sys.argv[3]
values = json.load(open(tags))["values"]
# 60 tags spread over the file, each giving the first IPv4 address of its first IPv4 prefix.
picked = []
for v in values[:: max(1, len(values) // 60)]:
    v4 = [p for p in v["properties"]["addressPrefixes"] if ":" not in p]
    if v4:
        picked.append((v["name"], str(ipaddress.ip_network(v4[0]).network_address)))
picked = picked[:60]
with open(f"{d}/dnsmasq.conf", "w") as f:
    f.write(f"port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\npid-file=\nlocal=/bench.test/\n")
    for i, (_, addr) in enumerate(picked):
        f.write(f"host-record=t{i}.bench.test,{addr}\n")
with open(f"{d}/catalog.toml", "w") as f:
    for i, (tag, _) in enumerate(picked):
        f.write(f'[[target]]\nid = "t{i}"\nname = "t{i}"\nprotocol = "dns"\nhost = "t{i}.bench.test"\n'
                f'profiles = ["internet"]\nservice_tag = "{tag}"\nwhy = "w"\nfix = "f"\n\n')
PY
dnsmasq --keep-in-foreground --conf-file="$dir/dnsmasq.conf" &
dns_pid=$!
for _ in $(seq 50); do
    dig +time=1 +tries=1 -p "$port" @127.0.0.1 t0.bench.test >/dev/null 2>&1 && break
    sleep 0.1
done
run() { # label, extra args...: writes "median_ms median_kb" (each the median of 7) to $dir/label
    local label=$1; shift
    local ms=() kb=() start end
    for _ in 1 2 3 4 5 6 7; do
        start=$(date +%s%N)
        /usr/bin/time -f '%M' -o "$dir/t" "$bin" check --no-discover --catalog "$dir/catalog.toml" \
            --dns-server "127.0.0.1:$port" --timeout 2s --output json "$@" >"$dir/out" || true
        end=$(date +%s%N)
        ms+=("$(( (end - start) / 1000000 ))")
        kb+=("$(tail -n1 "$dir/t")")
    done
    echo "$(printf '%s\n' "${ms[@]}" | sort -n | sed -n 4p) $(printf '%s\n' "${kb[@]}" | sort -n | sed -n 4p)" >"$dir/$label"
}
echo "vnetprobe: $("$bin" --version | head -1)"
echo "input: $(basename "$tags") ($(du -h "$tags" | cut -f1)), 60 DNS targets with public addresses"
run without
run with --service-tags "$tags"
labelled=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(1 for x in r["results"] if x.get("address_tags")))' "$dir/out")
read -r t0 m0 <"$dir/without"
read -r t1 m1 <"$dir/with"
awk -v t0="$t0" -v m0="$m0" -v t1="$t1" -v m1="$m1" -v n="$labelled" 'BEGIN {
    printf "%-34s %6d ms  %6.1f MB peak RSS (medians of 7)\n", "check", t0, m0 / 1024
    printf "%-34s %6d ms  %6.1f MB peak RSS (medians of 7)\n", "check --service-tags", t1, m1 / 1024
    printf "%-34s %+6d ms  %+6.1f MB   (target: <= 50 ms, <= 20 MB); %d of 60 results labelled\n", "added", t1 - t0, (m1 - m0) / 1024, n
}'
