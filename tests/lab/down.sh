#!/usr/bin/env bash
# Tears vplab down from any state, also after a half-finished up.sh: the lab's processes (by the pid
# files in the state dir, and whatever still runs inside a vplab- namespace), the namespaces (their
# veths go with them), stray vpl- links, /etc/netns/vplab-*, and the state dir. Safe to run twice.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || die "down.sh needs root"

# A pid is ours if it runs in one of the lab's namespaces or was started with the state dir on its
# command line (the namespace may already be gone).
ours() {
    local pid=$1
    running "$pid" || return 1
    case "$(ip netns identify "$pid" 2>/dev/null)" in vplab-*) return 0 ;; esac
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE/"
}

pids=()
for f in "$STATE"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(head -n1 "$f" | tr -dc 0-9)
    [ -n "$pid" ] && ours "$pid" && pids+=("$pid")
done
for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
done
# Strays: still running with the state dir on their command line, although no pid file names them
# (an overlapping run rewrote it) and their namespace is gone from `ip netns list`.
for pid in $(pgrep -f -- "$STATE/" 2>/dev/null); do
    ours "$pid" && pids+=("$pid")
done

if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 30); do
        alive=()
        for pid in "${pids[@]}"; do running "$pid" && alive+=("$pid"); done
        [ ${#alive[@]} -eq 0 ] && break
        sleep 0.1
    done
    [ ${#alive[@]} -gt 0 ] && kill -KILL "${alive[@]}" 2>/dev/null
fi

for ns in "${NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^vpl-'); do
    ip link del "$link" 2>/dev/null
done
rmdir /etc/netns 2>/dev/null
rm -rf "$STATE"

left=$( { ip netns list 2>/dev/null | grep '^vplab-'; ip -o link show 2>/dev/null | grep -o ' vpl-[^:@]*'; } )
[ -z "$left" ] || die "still present after teardown: $left"
exit 0
