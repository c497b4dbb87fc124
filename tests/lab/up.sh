#!/usr/bin/env bash
# Brings up vplab, a simulated Azure VNet in network namespaces, and applies one scenario.
# Usage: up.sh [SCENARIO]   (default healthy; tests/lab/scenario.sh --list names them)
#
#   vplab-compute  10.77.1.10/24 on vpl-c0, default route via the fw: the Azure ML compute
#        | veth
#   vplab-fw       10.77.1.1 on vpl-fc, 10.77.0.1/30 on vpl-fa: router, nftables table "nsg"
#        | veth
#   vplab-azure    10.77.0.2/30 on vpl-a0; on its loopback all of 10.77.2.0/24 (private endpoints),
#                  10.77.3.53 (DNS, dnsmasq), 10.77.4.8 (proxy, squid :3128), 198.51.100.0/24 and
#                  203.0.113.0/24 ("public" Azure and package repos), served by labserver.py
#
# No namespace has a route out of the lab: what is not in 10.77/16 or the two documentation ranges
# is unreachable. up.sh always starts from down.sh, and tears down again if it fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

scenario=${1:-healthy}
[ "$(id -u)" = 0 ] || die "up.sh needs root (network namespaces)"
printf '%s\n' "${SCENARIOS[@]}" | grep -qxF -- "$scenario" ||
    die "unknown scenario '$scenario' (one of: ${SCENARIOS[*]})"
missing=()
for tool in ip ss nft dnsmasq squid openssl python3 setsid; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: run tests/lab/install-deps.sh"

"$LAB_DIR/down.sh"
up_done=0
trap '[ "$up_done" = 1 ] || { say "up failed: tearing down"; "$LAB_DIR/down.sh"; }' EXIT
mkdir -p "$STATE"/{dns,squid,pki,logs}

# --- namespaces and links ---------------------------------------------------------------------
for ns in "${NAMESPACES[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    mkdir -p "/etc/netns/$ns"
    echo "nameserver $DNS_IP" >"/etc/netns/$ns/resolv.conf"
done
ip link add vpl-c0 netns "$NS_COMPUTE" type veth peer name vpl-fc netns "$NS_FW"
ip link add vpl-fa netns "$NS_FW" type veth peer name vpl-a0 netns "$NS_AZURE"

ip -n "$NS_COMPUTE" addr add "$COMPUTE_IP/24" dev vpl-c0
ip -n "$NS_COMPUTE" link set vpl-c0 up
ip -n "$NS_COMPUTE" route add default via "$FW_COMPUTE_IP"

ip -n "$NS_FW" addr add "$FW_COMPUTE_IP/24" dev vpl-fc
ip -n "$NS_FW" addr add "$FW_TRANSIT_IP/30" dev vpl-fa
ip -n "$NS_FW" link set vpl-fc up
ip -n "$NS_FW" link set vpl-fa up
for range in "${AZURE_RANGES[@]}"; do ip -n "$NS_FW" route add "$range" via "$AZURE_TRANSIT_IP"; done
in_ns "$NS_FW" sysctl -qw net.ipv4.ip_forward=1

ip -n "$NS_AZURE" addr add "$AZURE_TRANSIT_IP/30" dev vpl-a0
ip -n "$NS_AZURE" link set vpl-a0 up
# A prefix on loopback makes every address in it local: one server answers for all of them.
for range in "${AZURE_RANGES[@]}"; do ip -n "$NS_AZURE" addr add "$range" dev lo; done
ip -n "$NS_AZURE" route add 10.77.1.0/24 via "$FW_TRANSIT_IP"

# --- PKI: the lab's "public web PKI" and a TLS-inspecting firewall's CA --------------------------
(
    cd "$STATE/pki"
    gen_ca public-ca "vplab Public Root CA"
    gen_ca contoso-ca "Contoso TLS Inspection CA"
    hosts_each _san_all | gen_leaf public-ca public-leaf "vplab public services"
    SAN_TAG=PackageRepos hosts_each _san_tag | gen_leaf contoso-ca contoso-leaf "Contoso inspected"
    chmod 644 ./*.pem
)

# --- servers ----------------------------------------------------------------------------------
gen_squid >"$STATE/squid/squid.conf"
chown -R proxy "$STATE/squid" 2>/dev/null || chmod 777 "$STATE/squid"
start_bg squid "$NS_AZURE" squid -N -f "$STATE/squid/squid.conf"

printf 'scenario=starting\n' >"$STATE/server.conf"
start_bg labserver "$NS_AZURE" python3 "$LAB_DIR/labserver.py" --hosts "$HOSTS_TSV" \
    --pki "$STATE/pki" --conf "$STATE/server.conf" --applied "$STATE/server.applied"

cat >"$STATE/lab.env" <<EOF
# vplab: what a client of the lab needs (read by tests/lab_scenarios.rs and tests/lab/vnetprobe.sh)
COMPUTE_NS=$NS_COMPUTE
DNS_SERVER=$DNS_IP
PROXY_URL=http://$PROXY_IP:$PROXY_PORT
PUBLIC_ROOTS=$STATE/pki/public-ca.pem
INSPECTION_CA=$STATE/pki/contoso-ca.pem
DNS_LOG=$STATE/dns/queries.log
FW_DNS_SERVER=$FW_DNS_IP
COMPUTE_IP=$COMPUTE_IP
VARIABLES=$LAB_VARIABLES
EOF

peer_vnet_up
wait_tcp "lab server" 10.77.2.4 443
wait_tcp squid "$PROXY_IP" "$PROXY_PORT"
"$LAB_DIR/scenario.sh" "$scenario"
up_done=1
say "up: namespaces ${NAMESPACES[*]}, DNS $DNS_IP, proxy $PROXY_IP:$PROXY_PORT, state $STATE"
