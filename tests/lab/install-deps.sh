#!/usr/bin/env bash
# Installs what tests/lab needs on Debian or Ubuntu (as root): iproute2 (ip netns, ss), nftables,
# dnsmasq, squid, openssl, python3; conntrack (optional: flushes flows between scenarios) and dig
# (optional: for looking around by hand). The lab starts its own dnsmasq and squid, never the
# system services.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for pair in ip:iproute2 nft:nftables dnsmasq:dnsmasq-base squid:squid openssl:openssl \
            python3:python3 setsid:util-linux conntrack:conntrack dig:dnsutils; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
# Keep squid's and dnsmasq's system services from starting on install.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
trap '[ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
