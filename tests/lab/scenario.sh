#!/usr/bin/env bash
# Switches a running vplab to one scenario: the fw's nftables rules, the DNS server's zones and the
# lab server's behaviour. Usage: scenario.sh NAME   (scenario.sh --list prints the names)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCENARIO=${1:-}
if [ "$SCENARIO" = --list ]; then printf '%s\n' "${SCENARIOS[@]}"; exit 0; fi
[ "$(id -u)" = 0 ] || die "scenario.sh needs root"
[ -f "$STATE/lab.env" ] || die "the lab is not up (tests/lab/up.sh)"

# Healthy: a no-public-IP compute subnet whose NSG and firewall allow what the Azure ML docs list,
# with the workspace, its storage, key vault and registry behind private endpoints.
# For experiments: VPLAB_DENY=reject makes the last rule reject instead of drop, and
# VPLAB_UDP_SERVER=closed closes UDP 5831 on the server (the kernel answers port unreachable).
UDP_5831=accept INSTANCE_PORTS=open SMB=open PACKAGES=direct EXFIL=closed BATCH=open DENY=${VPLAB_DENY:-drop}
DNS_MODE=linked STORAGE_MODE=private-endpoint UDP_SERVER=${VPLAB_UDP_SERVER:-echo} INTERCEPT_TAG=
HTTP_STATUS= PEERING=up APPFW=off
case $SCENARIO in
    healthy) ;;
    udp-reject) UDP_5831=reject ;;                # firewall answers ICMP port unreachable
    udp-drop) UDP_5831=drop ;;                    # NSG deny: silence, indistinguishable from open
    instance-ports-blocked) INSTANCE_PORTS=reject ;;  # only 443 allowed to the compute instance
    dns-not-linked) DNS_MODE=unlinked ;;          # VNet not linked to privatelink zones
    custom-dns-no-forward) DNS_MODE=no-forward ;; # custom DNS without forwarders to 168.63.129.16
    proxy-ok|proxy-no-noproxy) PACKAGES=proxy ;;  # package repos only through the proxy
    tls-intercept) INTERCEPT_TAG=PackageRepos ;;  # firewall re-signs package TLS with its own CA
    smb-blocked) SMB=drop ;;                      # corporate rule dropping TCP 445
    exfil-open) EXFIL=open ;;                     # no service endpoint policy: any storage account
    exfil-policy) EXFIL=open HTTP_STATUS=sa2.blob.core.windows.net:403 ;;  # a policy denies per request
    storage-service-endpoint) STORAGE_MODE=service-endpoint ;;  # storage via service endpoint, public names
    batch-blocked) BATCH=drop ;;                  # no outbound 443 to BatchNodeManagement.<region>
    udp-silent-strict) UDP_5831=drop ;;           # udp-drop, judged with --strict
    inbound-public-ip) ;;                         # healthy; the public-ip profile's inbound rows
    peered-vnet) PEERING=down ;;                  # the peering to the workspace's VNet is disconnected
    # A hub Azure Firewall: application rules for 80/443 by SNI / Host (appfw.py; it denies
    # APPFW_DENY and all HTTP), network rules for the rest, the firewall as DNS proxy; storage is
    # reached by its service tag, through the firewall.
    azure-firewall|forced-tunnel-public-ip) APPFW=on STORAGE_MODE=service-endpoint ;;
    # --- azure-files (issue 21): the files tests/lab/azure-export.sh exports name each failure's rule ---
    azure-files) SMB=drop UDP_5831=reject BATCH=drop ;;  # three NSG denies at once
    # --- end azure-files ---
    *) die "unknown scenario '$SCENARIO' (one of: ${SCENARIOS[*]})" ;;
esac

# Firewall: replace the whole ruleset, then forget flows admitted under the previous one.
gen_nft "$SCENARIO" >"$STATE/nsg.nft"
in_ns "$NS_FW" nft -f "$STATE/nsg.nft" || die "nft rejected $STATE/nsg.nft"
if command -v conntrack >/dev/null; then in_ns "$NS_FW" conntrack -F >/dev/null 2>&1 || true; fi

peering_apply "$PEERING"

# The firewall's application rules and DNS proxy run only in the firewall scenarios.
stop_bg appfw
stop_bg fwdns
if [ "$APPFW" = on ]; then
    gen_appfw_allow >"$STATE/appfw.allow"
    start_bg appfw "$NS_FW" python3 "$LAB_DIR/appfw.py" --allow "$STATE/appfw.allow" \
        --http-port "$APPFW_HTTP_PORT" --tls-port "$APPFW_TLS_PORT"
    start_bg fwdns "$NS_FW" dnsmasq -k --listen-address="$FW_DNS_IP" --bind-interfaces --no-resolv \
        --no-hosts --cache-size=0 --pid-file= --user=root --group=root --server="$DNS_IP"
    wait_for "appfw on $APPFW_TLS_PORT" in_ns "$NS_FW" bash -c "ss -Hltn 'sport = :$APPFW_TLS_PORT' | grep -q ."
    wait_for "the firewall's DNS proxy on $FW_DNS_IP" in_ns "$NS_FW" bash -c "ss -Hlun src $FW_DNS_IP:53 | grep -q ."
fi

# DNS: restart dnsmasq only when its zones change.
gen_dnsmasq >"$STATE/dns/dnsmasq.conf.new"
if ! cmp -s "$STATE/dns/dnsmasq.conf.new" "$STATE/dns/dnsmasq.conf" || ! alive dnsmasq; then
    mv "$STATE/dns/dnsmasq.conf.new" "$STATE/dns/dnsmasq.conf"
    stop_bg dnsmasq
    start_bg dnsmasq "$NS_AZURE" dnsmasq -k --conf-file="$STATE/dns/dnsmasq.conf"
    wait_dns
else
    rm -f "$STATE/dns/dnsmasq.conf.new"
fi

# Lab server: new knobs, SIGHUP, and wait until it says it applied them.
printf 'scenario=%s\nudp_5831=%s\nintercept_tag=%s\nhttp_status=%s\n' "$SCENARIO" "$UDP_SERVER" \
    "$INTERCEPT_TAG" "$HTTP_STATUS" >"$STATE/server.conf"
rm -f "$STATE/server.applied"
kill -HUP "$(cat "$STATE/labserver.pid")"
wait_for "lab server applying $SCENARIO" \
    bash -c "[ \"\$(cat '$STATE/server.applied' 2>/dev/null)\" = '$SCENARIO' ]"

echo "$SCENARIO" >"$STATE/scenario"
say "scenario $SCENARIO applied"
