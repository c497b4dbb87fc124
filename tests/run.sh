#!/usr/bin/env bash
# The whole test suite, as README.md states it: installs what the tests need on a fresh Debian
# machine (packages, the musl target), then runs cargo's tests and the packaging checks.
# Needs root for the package installs and for the tests that build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run it as root (packages, namespaces, nftables, the lab);" \
        "as anyone, \`cargo test\` runs the tests that need no root" >&2
    exit 1
fi

# Debian packages the tests drive for real: a DNS server, a firewall, proxies, Prometheus,
# the musl toolchain for the static build, systemd-analyze for the unit scores, headless
# Chromium for the status page, bsdutils' script(1) for the progress line under a terminal,
# node_exporter for the scrape benchmark's side-by-side figures.
PACKAGES=(dnsmasq-base nftables iproute2 squid tinyproxy prometheus musl-tools openssl python3 systemd time file binutils
    shellcheck acl curl python3-requests chromium bsdutils prometheus-node-exporter apache2-utils)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    # Packages such as squid and prometheus would start system services on install: keep them
    # stopped, the tests start their own instances on loopback.
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    if [ $had_policy = 0 ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    trap '[ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi

# Every test, the ones that need root included (the root-tests feature); a missing tool fails
# the test that needs it instead of skipping it.
cargo test --locked --all-targets --features root-tests

if [ -x tests/packaging/check.sh ]; then
    VNETPROBE_PACKAGING_FULL=1 bash tests/packaging/check.sh
fi
