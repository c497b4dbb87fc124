#!/usr/bin/env bash
# What discovery costs a run, off Azure and on it: wall time of `vnetprobe context` (no probing,
# so the figure is discovery plus process start) for each way the Instance Metadata Service can
# fail to answer. Prints min / median / max over RUNS runs; asserts nothing.
#
# Traffic stays on loopback, or inside a network namespace this script creates and deletes (the
# namespace cases need root and iproute2; they are skipped otherwise). The real 169.254.169.254
# is only ever addressed inside that namespace, where it is routed nowhere or into a dummy link.
#
# Usage: benches/discovery_bench.sh [RUNS]   (VNETPROBE=path/to/binary to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-5}
BIN=${VNETPROBE:-}
if [ -z "$BIN" ]; then
    cargo build --quiet
    BIN=$PWD/target/debug/vnetprobe
fi
WORK=$(mktemp -d)
NS=vnp-disc-bench-$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A loopback listener: "silent" accepts and never answers; "valid" answers like IMDS.
cat > "$WORK/imds.py" <<'EOF'
import socket, sys, threading, time
mode, port_file = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
s.settimeout(1.0)
open(port_file, "w").write(str(s.getsockname()[1]))
body = b'{"compute":{"location":"westeurope","azEnvironment":"AzurePublicCloud"}}'
held = []
deadline = time.time() + 600
while time.time() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    if mode == "valid":
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        c.close()
    else:
        held.append(c)
EOF

start_server() { # mode; the port lands in $WORK/port.MODE
    local pf="$WORK/port.$1"
    python3 "$WORK/imds.py" "$1" "$pf" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$pf" ] && return; sleep 0.1; done
    echo "the $1 listener did not start" >&2
    exit 1
}

measure() { # label, then the command
    local label=$1
    shift
    local times=()
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
    done
    local sorted
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    printf '%-58s min %5d ms  median %5d ms  max %5d ms\n' "$label" \
        "$(echo "$sorted" | head -1)" "$(echo "$sorted" | sed -n "$(((RUNS + 1) / 2))p")" "$(echo "$sorted" | tail -1)"
}

ctx() { env -i "$BIN" context --output json --config /dev/null "$@"; }

closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_server silent
start_server valid
silent=$(cat "$WORK/port.silent")
valid=$(cat "$WORK/port.valid")

echo "discovery cost per run ($RUNS runs each, binary $BIN)"
measure "--no-discover (baseline: process start)" ctx --no-discover
measure "IMDS answers (loopback fake)" ctx --imds-endpoint "http://127.0.0.1:$valid"
measure "IMDS port closed (refused at once)" ctx --imds-endpoint "http://127.0.0.1:$closed"
measure "IMDS accepts, never answers (deadline)" ctx --imds-endpoint "http://127.0.0.1:$silent"
measure "region given (IMDS not asked)" ctx --region westeurope --imds-endpoint "http://127.0.0.1:$silent"

if [ "$(id -u)" = 0 ] && ip netns add "$NS" 2>/dev/null; then
    ip netns exec "$NS" ip link set lo up
    measure "netns, default endpoint, no route (unreachable)" ip netns exec "$NS" env -i "$BIN" context --config /dev/null
    # A veth pair inside the namespace, and a static neighbour entry with a MAC nobody has:
    # the SYN leaves v0 and is dropped on arrival at v1, like a network that black-holes it.
    ip netns exec "$NS" ip link add v0 type veth peer name v1
    ip netns exec "$NS" ip link set v0 up
    ip netns exec "$NS" ip link set v1 up
    ip netns exec "$NS" ip route add 169.254.169.254/32 dev v0
    ip netns exec "$NS" ip neigh add 169.254.169.254 lladdr 02:00:5e:00:00:01 dev v0
    measure "netns, default endpoint, SYN dropped (deadline)" ip netns exec "$NS" env -i "$BIN" context --config /dev/null
else
    echo "namespace cases skipped (need root and iproute2)"
fi
