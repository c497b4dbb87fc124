#!/usr/bin/env bash
# Azure's own view of the running lab, as an admin would export it with `az`: the lab's firewall
# rules and routes turned into the three files `vnetprobe check --service-tags --nsg --routes`
# reads. Usage: azure-export.sh OUTDIR (needs root and a lab that is up). Writes
#   OUTDIR/service-tags.json  the weekly download's shape: one tag per nftables set the lab gives a
#                             service tag's name (Storage_westeurope -> Storage.westeurope, with its
#                             global parent Storage), prefixes as the set's addresses
#   OUTDIR/nsg.json           `az network nsg show` of the compute subnet's NSG: one security rule
#                             per rule of the fw's chain compute-outbound (priority and name from
#                             its comment, accept -> Allow, drop/reject -> Deny), and the six
#                             default rules (the forward chain's policy drop of everything not
#                             from the compute subnet is DenyAllInBound)
#   OUTDIR/routes.json        `az network nic show-effective-route-table` of the compute NIC: its
#                             connected routes as VnetLocal, the routes over the peering's veth as
#                             VnetPeering, its default route as a user route to the
#                             VirtualAppliance it names (the fw), Azure's own 0.0.0.0/0 Internet
#                             route shown Invalid under it
# A rule the converter does not understand stops it (exit 1): the files never misstate the lab.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=${1:-}
[ -n "$OUT" ] || die "usage: azure-export.sh OUTDIR"
[ "$(id -u)" = 0 ] || die "azure-export.sh needs root"
[ -f "$STATE/lab.env" ] || die "the lab is not up (tests/lab/up.sh)"
mkdir -p "$OUT"
in_ns "$NS_FW" nft -j list table inet nsg >"$OUT/nft.json"
in_ns "$NS_COMPUTE" ip -j route show >"$OUT/ip-route.json"

python3 - "$OUT" <<'EOF'
import json, sys

out = sys.argv[1]
nft = json.load(open(f"{out}/nft.json"))["nftables"]
routes = json.load(open(f"{out}/ip-route.json"))

# nftables sets that are rule lists or lab addresses, not service tags.
NOT_TAGS = {"PackageRepos", "OutsideServiceEndpointPolicy", "PrivateEndpoints", "DnsServers", "Proxy"}
REGIONS = {"westeurope"}
# The compute side of the peering's veth (tests/lab/peered-vnet.sh).
PEERING_DEV = "vpl-cp"

def fail(msg):
    sys.exit(f"vplab: error: azure-export: {msg}")

def elem(e):
    if isinstance(e, str):
        return e + "/32"
    if isinstance(e, dict) and "prefix" in e:
        return f'{e["prefix"]["addr"]}/{e["prefix"]["len"]}'
    fail(f"set element {e!r}")

sets = {}
for o in nft:
    if "set" in o:
        s = o["set"]
        sets[s["name"]] = [elem(e) for e in s.get("elem", [])]

def tag_name(set_name):
    return set_name.replace("_", ".", 1)

# --- service tags, the download's shape ---
values, parents = [], {}
for i, (name, prefixes) in enumerate(sorted(sets.items())):
    if name in NOT_TAGS:
        continue
    tag = tag_name(name)
    family, _, region = tag.partition(".")
    region = region.lower() if region.lower() in REGIONS else ""
    values.append({"name": tag, "id": tag, "properties": {
        "changeNumber": 1, "region": region, "regionId": 18 if region else 0, "platform": "Azure",
        "systemService": family, "addressPrefixes": prefixes,
        "networkFeatures": ["API", "NSG", "UDR", "FW"]}})
    if region:
        parents.setdefault(family, []).extend(prefixes)
for family, prefixes in sorted(parents.items()):
    if any(v["name"] == family for v in values):
        continue
    values.append({"name": family, "id": family, "properties": {
        "changeNumber": 1, "region": "", "regionId": 0, "platform": "Azure", "systemService": family,
        "addressPrefixes": sorted(set(prefixes)), "networkFeatures": ["API", "NSG", "UDR", "FW"]}})
json.dump({"changeNumber": 1, "cloud": "Public", "values": values},
          open(f"{out}/service-tags.json", "w"), indent=1)

# --- the subnet's NSG, `az network nsg show` ---
def ports(right):
    vals = right["set"] if isinstance(right, dict) and "set" in right else [right]
    if not all(isinstance(v, int) for v in vals):
        fail(f"port match {right!r}")
    return [str(v) for v in vals]

rules, used = [], set()
for o in nft:
    r = o.get("rule")
    if not r or r["chain"] != "compute-outbound":
        continue
    comment = r.get("comment", "")
    words = comment.split()
    if len(words) < 2 or not words[0].isdigit():
        fail(f"rule without a 'PRIORITY Name' comment: {comment!r}")
    # NSG priorities of custom rules are 100-4096 and unique.
    priority = min(max(int(words[0]), 100), 4096)
    while priority in used:
        priority += 1
    used.add(priority)
    rule = {"name": words[1].rstrip(":"), "description": comment, "priority": priority,
            "direction": "Outbound", "protocol": "*", "sourceAddressPrefix": "*", "sourceAddressPrefixes": [],
            "sourcePortRange": "*", "sourcePortRanges": [], "destinationAddressPrefix": "*",
            "destinationAddressPrefixes": [], "destinationPortRange": "*", "destinationPortRanges": []}
    access = None
    for e in r["expr"]:
        if "match" in e:
            m = e["match"]
            left, right = m["left"], m["right"]
            if m["op"] != "==":
                fail(f"{comment}: operator {m['op']}")
            if left.get("meta", {}).get("key") == "l4proto":
                protos = right["set"] if isinstance(right, dict) else [right]
                rule["protocol"] = protos[0].capitalize() if len(protos) == 1 else "*"
            elif "payload" in left and left["payload"]["field"] == "dport":
                p = left["payload"]["protocol"]
                if p in ("tcp", "udp"):
                    rule["protocol"] = p.capitalize()
                rule["destinationPortRange"], rule["destinationPortRanges"] = "", ports(right)
            elif "payload" in left and left["payload"] == {"protocol": "ip", "field": "daddr"}:
                if isinstance(right, str) and right.startswith("@"):
                    name = right[1:]
                    if name in NOT_TAGS:
                        rule["destinationAddressPrefix"] = ""
                        rule["destinationAddressPrefixes"] = sets[name]
                    else:
                        rule["destinationAddressPrefix"] = tag_name(name)
                else:
                    rule["destinationAddressPrefix"] = elem(right)
            else:
                fail(f"{comment}: match {m!r}")
        elif "accept" in e:
            access = "Allow"
        elif "drop" in e or "reject" in e:
            access = "Deny"
        elif "counter" in e:
            pass
        else:
            fail(f"{comment}: statement {e!r}")
    if access is None:
        fail(f"{comment}: no verdict")
    rule["access"] = access
    rules.append(rule)

def default(name, prio, direction, access, src, dst):
    return {"name": name, "priority": prio, "direction": direction, "access": access, "protocol": "*",
            "sourceAddressPrefix": src, "sourcePortRange": "*", "destinationAddressPrefix": dst,
            "destinationPortRange": "*", "description": "default rule"}

defaults = [
    default("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    default("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    default("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    default("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    default("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    default("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
]
base = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/vplab/providers/Microsoft.Network"
json.dump({"name": "vplab-compute-nsg", "id": f"{base}/networkSecurityGroups/vplab-compute-nsg",
           "location": "westeurope", "type": "Microsoft.Network/networkSecurityGroups",
           "securityRules": rules, "defaultSecurityRules": defaults,
           "subnets": [{"id": f"{base}/virtualNetworks/vplab-vnet/subnets/compute"}]},
          open(f"{out}/nsg.json", "w"), indent=1)

# --- the compute NIC's effective routes ---
value = []
for r in routes:
    dst = "0.0.0.0/0" if r["dst"] == "default" else r["dst"]
    if "/" not in dst:
        dst += "/32"
    if r.get("dev") == PEERING_DEV:
        # The peered VNet's address space (and the lab's link to it): Azure's VNetPeering routes.
        value.append({"source": "Default", "state": "Active", "addressPrefix": [dst], "nextHopIpAddress": [],
                      "nextHopType": "VnetPeering", "name": None})
    elif "gateway" in r:
        value.append({"source": "User", "state": "Active", "addressPrefix": [dst], "nextHopIpAddress": [r["gateway"]],
                      "nextHopType": "VirtualAppliance", "name": "to-hub-firewall"})
        if dst == "0.0.0.0/0":
            value.append({"source": "Default", "state": "Invalid", "addressPrefix": ["0.0.0.0/0"],
                          "nextHopIpAddress": [], "nextHopType": "Internet", "name": None})
    else:
        value.append({"source": "Default", "state": "Active", "addressPrefix": [dst], "nextHopIpAddress": [],
                      "nextHopType": "VnetLocal", "name": None})
json.dump({"value": value}, open(f"{out}/routes.json", "w"), indent=1)
EOF
rm -f "$OUT/nft.json" "$OUT/ip-route.json"
say "exported service-tags.json, nsg.json, routes.json to $OUT"
