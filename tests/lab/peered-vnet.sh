# shellcheck shell=bash
# The second "VNet" of the lab: the workspace's VNet, peered with the compute VNet, for the
# peered-vnet scenario (issue 15). Sourced by lib.sh, never run.
#
#   vplab-compute  vpl-cp 10.78.0.1/30 ── veth (the peering) ── vpl-pc 10.78.0.2/30  vplab-peer
#                                                        on its loopback: 10.78.2.4 the workspace's
#                                                        private endpoint, 10.78.2.5 the storage
#                                                        account's file endpoint
#
# `vnetprobe listen` answers there for both (TCP 443, 445, 29500 and UDP 5831) with the key
# $STATE/pki/peer.key, so `vnetprobe check --peer ... --key-file` from the compute namespace proves
# the path through the peering and nothing else. The scenario breaks the peering: the peer's end of
# the link goes down and packets vanish, as across a disconnected Azure peering.

# shellcheck disable=SC2034  # read by the scripts that source lib.sh
PEER_WORKSPACE_IP=10.78.2.4
PEER_STORAGE_IP=10.78.2.5
PEERING_COMPUTE_IP=10.78.0.1
PEERING_PEER_IP=10.78.0.2
PEER_TCP=443,445,29500
PEER_UDP=5831

# peer_vnet_up: the namespace is made with the others; this links it, starts the responder and
# adds what a client needs to lab.env.
peer_vnet_up() {
    ip link add vpl-cp netns "$NS_COMPUTE" type veth peer name vpl-pc netns "$NS_PEER"
    ip -n "$NS_COMPUTE" addr add "$PEERING_COMPUTE_IP/30" dev vpl-cp
    ip -n "$NS_COMPUTE" link set vpl-cp up
    ip -n "$NS_COMPUTE" route add 10.78.2.0/24 via "$PEERING_PEER_IP"
    ip -n "$NS_PEER" addr add "$PEERING_PEER_IP/30" dev vpl-pc
    ip -n "$NS_PEER" addr add 10.78.2.0/24 dev lo
    peering_up
    (umask 077 && head -c 32 /dev/urandom | base64 >"$STATE/pki/peer.key")
    local bin=${VNETPROBE:-$LAB_DIR/../../target/debug/vnetprobe}
    if [ -x "$bin" ]; then
        start_bg responder "$NS_PEER" "$bin" listen --tcp "$PEER_TCP" --udp "$PEER_UDP" \
            --key-file "$STATE/pki/peer.key" --forever
        wait_for "responder on $PEER_STORAGE_IP:445" \
            in_ns "$NS_PEER" bash -c "exec 3<>/dev/tcp/$PEER_STORAGE_IP/445"
    else
        say "no vnetprobe binary at $bin (cargo build, or set VNETPROBE): the peered VNet has no responder"
    fi
    cat >>"$STATE/lab.env" <<EOF
PEER_WORKSPACE=$PEER_WORKSPACE_IP
PEER_STORAGE=$PEER_STORAGE_IP
PEER_KEY=$STATE/pki/peer.key
EOF
}

# The peering, connected: the link up, the route back to the compute subnet (a link that went
# down lost it), and no neighbour entry left FAILED from while it was down.
peering_up() {
    ip -n "$NS_PEER" link set vpl-pc up
    ip -n "$NS_PEER" route replace 10.77.1.0/24 via "$PEERING_COMPUTE_IP"
    ip -n "$NS_COMPUTE" neigh flush dev vpl-cp
    ip -n "$NS_PEER" neigh flush dev vpl-pc
}

# peering_apply up|down
peering_apply() {
    case $1 in
        up) peering_up ;;
        down) ip -n "$NS_PEER" link set vpl-pc down ;;
        *) die "peering_apply: up or down, not '$1'" ;;
    esac
}
