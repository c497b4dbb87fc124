#!/usr/bin/env bash
# fleet-peers.sh: the peer mode of fleet-job.yml. Every node runs the
# responder (vnetprobe listen) and checks its paths to every other node, so
# `vnetprobe merge` can show a node-by-node matrix.
#
# Usage (from the job's command, see fleet-job.yml):
#   fleet-peers.sh start OUT    starts the responder, publishes this node's
#                               address under OUT/peers/, waits for the other
#                               nodes' addresses and prints the check options
#                               (--peer ... --key-file ...) on stdout
#   fleet-peers.sh finish OUT   says this node is done, waits until every node
#                               is (so no responder goes away while others
#                               still check it), then stops the responder
#
# Environment:
#   VNETPROBE            the binary (default /tmp/vnetprobe)
#   VNETPROBE_PEER_TCP   TCP ports to answer on and to check (default 445,29500)
#   VNETPROBE_PEER_UDP   UDP ports (default 5831)
#   VNETPROBE_PEER_KEY   shared key file (default ./peer.key in the code folder;
#                        without one the echoes are not authenticated)
#   VNETPROBE_PEER_WAIT  seconds to wait for the other nodes (default 300)
#   VNETPROBE_PEER_ADDRESS  this node's address (default: the first of
#                        `hostname -I`)
#   WORLD_SIZE           the number of nodes (set by the PyTorch distribution
#                        with one process per node)
#   AZ_BATCH_HOST_LIST   when set (MPI distribution), the nodes' addresses,
#                        used instead of the shared folder
#
# Exit status: 0, even when nodes are missing (the reports tell it); 2 on bad
# usage. Messages go to stderr.
set -uo pipefail

prog=fleet-peers
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ $# -eq 2 ]] || die "usage: fleet-peers.sh start|finish OUT"
action=$1
out=$2
[[ -d "$out" ]] || die "$out is not a folder (the job's reports output)"

bin=${VNETPROBE:-/tmp/vnetprobe}
tcp=${VNETPROBE_PEER_TCP:-445,29500}
udp=${VNETPROBE_PEER_UDP:-5831}
wait_s=${VNETPROBE_PEER_WAIT:-300}
nodes=${WORLD_SIZE:-1}
me=$(hostname)
dir="$out/peers"
pidfile=/tmp/vnetprobe-listen.$me.pid
[[ "$wait_s" =~ ^[0-9]+$ ]] || die "VNETPROBE_PEER_WAIT must be a number of seconds"
[[ "$nodes" =~ ^[0-9]+$ && "$nodes" -ge 1 ]] || die "WORLD_SIZE must be a node count"

# wait_files SUFFIX: until $nodes files *.SUFFIX exist in $dir, at most $wait_s s.
wait_files() {
    local suffix=$1 waited=0 n
    while :; do
        n=$(find "$dir" -maxdepth 1 -name "*.$suffix" 2>/dev/null | wc -l)
        [[ $n -ge $nodes ]] && return 0
        if [[ $waited -ge $wait_s ]]; then
            log "only $n of $nodes nodes wrote *.$suffix within ${wait_s}s: going on without the others"
            return 0
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

peer_spec() { printf '%s:tcp/%s,udp/%s' "$1" "$tcp" "$udp"; }

start() {
    mkdir -p "$dir" || die "cannot create $dir"
    local key=${VNETPROBE_PEER_KEY:-./peer.key} key_args=()
    if [[ -f "$key" ]]; then
        install -m 0600 "$key" "/tmp/vnetprobe-peer.$me.key" || die "cannot copy the key $key"
        key_args=(--key-file "/tmp/vnetprobe-peer.$me.key")
    else
        log "no key file ($key): peer echoes will not be authenticated"
    fi
    # The responder's log names every peer it answered; it stops by itself
    # after 15 minutes should this script never reach `finish`. Its stdout
    # must not be ours: `$(fleet-peers.sh start)` would wait for it to close.
    "$bin" listen --tcp "$tcp" --udp "$udp" "${key_args[@]}" --for 15m \
        </dev/null >/dev/null 2>"$dir/$me.listen.log" &
    echo $! >"$pidfile"

    local addr=${VNETPROBE_PEER_ADDRESS:-}
    if [[ -z "$addr" ]]; then
        addr=$(hostname -I 2>/dev/null | awk '{print $1}')
    fi
    [[ -n "$addr" ]] || die "cannot tell this node's address: set VNETPROBE_PEER_ADDRESS"

    local addrs=()
    if [[ -n "${AZ_BATCH_HOST_LIST:-}" ]]; then
        IFS=, read -r -a addrs <<<"$AZ_BATCH_HOST_LIST"
    else
        echo "$addr" >"$dir/$me.addr.tmp" && mv "$dir/$me.addr.tmp" "$dir/$me.addr"
        wait_files addr
        local f
        for f in "$dir"/*.addr; do
            [[ -f "$f" ]] && addrs+=("$(head -n1 "$f")")
        done
    fi
    local a args=("${key_args[@]}")
    for a in "${addrs[@]}"; do
        [[ -n "$a" && "$a" != "$addr" ]] && args+=(--peer "$(peer_spec "$a")")
    done
    log "checking $(( (${#args[@]} - ${#key_args[@]}) / 2 )) peers from $addr"
    printf '%s\n' "${args[@]}"
}

finish() {
    touch "$dir/$me.done"
    wait_files "done"
    if [[ -f "$pidfile" ]]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    fi
}

case "$action" in
    start) start ;;
    finish) finish ;;
    *) die "unknown action '$action' (start or finish)" ;;
esac
exit 0
