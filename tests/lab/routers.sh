#!/usr/bin/env bash
# A routed path for path tracing (issue 22), apart from vplab: four namespaces in a line, the two
# in the middle Linux routers (forwarding decrements the TTL and answers time exceeded, as real
# routers do), IPv4 and IPv6. Nothing in it reaches outside the namespaces it creates.
#
#   PREFIX-c  10.79.1.2    ── PREFIX-r1 10.79.1.1 | 10.79.2.1 ── PREFIX-r2 10.79.2.2 | 10.79.3.1 ── PREFIX-d 10.79.3.2
#   (compute) fd79:1::2                 fd79:1::1 | fd79:2::1              fd79:2::2 | fd79:3::1            fd79:3::2
#
#   routers.sh up PREFIX            builds it (after removing whatever PREFIX-* is there)
#   routers.sh scenario PREFIX NAME switches the filters: open, own-output, first-hop-drop,
#                                   fw-drop, fw-reject (each filters only TCP and UDP to PREFIX-d)
#   routers.sh down PREFIX          removes the namespaces (their veths go with them); safe twice
#
# The routers' ICMP rate limits are off (icmp_ratelimit=0, icmp.ratelimit=0), so no answer is
# missing for a reason other than the scenario.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "routers.sh: needs root" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: routers.sh up|down PREFIX | scenario PREFIX NAME" >&2; exit 2; }
cmd=$1 prefix=$2
case $prefix in *[!a-z0-9-]* | '') echo "routers.sh: PREFIX is [a-z0-9-]+" >&2; exit 2 ;; esac
C=$prefix-c R1=$prefix-r1 R2=$prefix-r2 D=$prefix-d
DEST4=10.79.3.2 DEST6=fd79:3::2

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
    local ns
    for ns in "$C" "$R1" "$R2" "$D"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}

# link A IFA B IFB: a veth between namespaces A and B.
link() {
    ip -n "$1" link add name "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set dev "$2" up
    ip -n "$3" link set dev "$4" up
}

addr() { # NS IF V4/len V6/len
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" -6 addr add "$4" dev "$2" nodad
}

up() {
    down
    local ns
    for ns in "$C" "$R1" "$R2" "$D"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
    for ns in "$R1" "$R2"; do
        in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
            net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
    done
    # Each veth end is named after the namespace at its other end.
    link "$C" r1 "$R1" c
    link "$R1" r2 "$R2" r1
    link "$R2" d "$D" r2
    addr "$C" r1 10.79.1.2/24 fd79:1::2/64
    addr "$R1" c 10.79.1.1/24 fd79:1::1/64
    addr "$R1" r2 10.79.2.1/24 fd79:2::1/64
    addr "$R2" r1 10.79.2.2/24 fd79:2::2/64
    addr "$R2" d 10.79.3.1/24 fd79:3::1/64
    addr "$D" r2 10.79.3.2/24 fd79:3::2/64
    ip -n "$C" route add default via 10.79.1.1
    ip -n "$C" -6 route add default via fd79:1::1
    ip -n "$R1" route add 10.79.3.0/24 via 10.79.2.2
    ip -n "$R1" -6 route add fd79:3::/64 via fd79:2::2
    ip -n "$R2" route add 10.79.1.0/24 via 10.79.2.1
    ip -n "$R2" -6 route add fd79:1::/64 via fd79:2::1
    ip -n "$D" route add default via 10.79.3.1
    ip -n "$D" -6 route add default via fd79:3::1
    scenario open
}

# The filters of a scenario, one `table inet trace` per namespace that filters.
scenario() {
    local ns rules=() to="meta l4proto { tcp, udp } ip daddr $DEST4" to6="meta l4proto { tcp, udp } ip6 daddr $DEST6"
    for ns in "$C" "$R1" "$R2" "$D"; do
        in_ns "$ns" nft delete table inet trace 2>/dev/null || true
    done
    case $1 in
        open) return 0 ;;
        # This host's own firewall: the packets never leave the compute namespace.
        own-output) rules=("$C" "chain c_out { type filter hook output priority 0; $to drop; $to6 drop; }") ;;
        # An NSG: dropped where the packets enter the first device, before any TTL is looked at,
        # so no TTL is answered.
        first-hop-drop) rules=("$R1" "chain r_pre { type filter hook prerouting priority 0; $to drop; $to6 drop; }") ;;
        # A firewall two hops on that drops: hop 1 answers, then nothing does.
        fw-drop) rules=("$R2" "chain r_pre { type filter hook prerouting priority 0; $to drop; $to6 drop; }") ;;
        # A firewall that rejects what it forwards: the TTL check comes first (so hop 2 still
        # answers time exceeded), then ICMP administratively prohibited.
        fw-reject) rules=("$R2" "chain r_fw { type filter hook forward priority 0; $to reject with icmp type admin-prohibited; $to6 reject with icmpv6 type admin-prohibited; }") ;;
        *) echo "routers.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
    printf 'table inet trace {\n %s\n}\n' "${rules[1]}" | in_ns "${rules[0]}" nft -f -
}

case $cmd in
    up) up ;;
    down) down ;;
    scenario) [ $# -eq 3 ] || { echo "usage: routers.sh scenario PREFIX NAME" >&2; exit 2; }; scenario "$3" ;;
    *) echo "routers.sh: unknown command $cmd" >&2; exit 2 ;;
esac
