# shellcheck shell=bash
# Shared by the namespace benchmarks (sourced, not run): the binary to measure, a scratch folder,
# a network namespace with loopback up, TCP listeners in it, and a cleanup of all of them on exit.
#   usage: source benches/namespace.sh "$@"   (first argument: path/to/vnetprobe, optional)

BIN=${1:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/vnetprobe
fi
BIN=$(readlink -f "$BIN")
NS=vpbench-$$
WORK=$(mktemp -d)
cleanup() {
    if [ -f "$WORK/pids" ]; then xargs -r kill <"$WORK/pids" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

# listen BASE N: accepts (and closes) connections on 127.0.0.1 ports BASE..BASE+N-1 for at most
# ten minutes, in the background.
listen() {
    ip netns exec "$NS" python3 - "$1" "$2" <<'PY' &
import socket, sys, time, select
base, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for p in range(base, base + n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", p)); s.listen(4096); socks.append(s)
end = time.time() + 600
while time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.5)
    for s in r:
        c, _ = s.accept(); c.close()
PY
    echo $! >>"$WORK/pids"
    sleep 0.5
}
