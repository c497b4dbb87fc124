//! IP prefixes as inclusive ranges of integers, one space per family, and sets of them merged
//! into sorted, disjoint ranges: a point lookup or a containment test is one binary search, and
//! a set turns back into the fewest CIDR blocks (the aggregated lists of the fix plan). Smaller
//! than a trie crate for what is asked of it: which sets hold an address, does one set cover
//! another, what is left of one after another.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The family and the integer of an address (a v4-mapped IPv6 address is its IPv4 address).
pub fn key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (true, u128::from(u32::from(v4))),
            None => (false, u128::from(v6)),
        },
    }
}

/// One CIDR block (or one address) as the inclusive range it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub v4: bool,
    pub first: u128,
    pub last: u128,
}

fn host_mask(bits: u32, len: u32) -> u128 {
    let host = bits - len;
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

impl Range {
    /// `10.0.0.0/8`, `2603:1000::/40`, or a bare address (a /32 or /128). Host bits past the
    /// length are masked, as Azure does with a rule's `10.0.0.4/24`.
    pub fn parse(text: &str) -> Result<Range, String> {
        let text = text.trim();
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or prefix"))?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = match len {
            Some(l) => l
                .parse()
                .ok()
                .filter(|l| *l <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
            None => bits,
        };
        let v4 = ip.is_ipv4();
        let value = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let host = host_mask(bits, len);
        Ok(Range {
            v4,
            first: value & !host,
            last: (value & !host) | host,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, k) = key(ip);
        v4 == self.v4 && self.first <= k && k <= self.last
    }

    /// The CIDR blocks that cover exactly this range, in order.
    fn cidrs(&self, out: &mut Vec<String>) {
        let bits = if self.v4 { 32 } else { 128 };
        let mut at = self.first;
        loop {
            // The largest aligned block starting at `at` that stays inside the range.
            let mut len = bits - at.trailing_zeros().min(bits);
            while len < bits && at | host_mask(bits, len) > self.last {
                len += 1;
            }
            out.push(if self.v4 {
                format!("{}/{len}", Ipv4Addr::from(at as u32))
            } else {
                format!("{}/{len}", Ipv6Addr::from(at))
            });
            match (at | host_mask(bits, len)).checked_add(1) {
                Some(next) if next <= self.last => at = next,
                _ => break,
            }
        }
    }
}

/// A set of prefixes: sorted, disjoint, adjacent ranges merged; IPv4 ranges before IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    ranges: Vec<Range>,
}

impl PrefixSet {
    pub fn new(mut ranges: Vec<Range>) -> PrefixSet {
        // (v4 = true) first: sort by family descending, then by first address.
        ranges.sort_unstable_by_key(|r| (!r.v4, r.first, r.last));
        let mut merged: Vec<Range> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(m) if m.v4 == r.v4 && r.first <= m.last.saturating_add(1) => {
                    m.last = m.last.max(r.last)
                }
                _ => merged.push(r),
            }
        }
        merged.shrink_to_fit();
        PrefixSet { ranges: merged }
    }

    /// Parses every prefix; the first bad one is the error.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<PrefixSet, String> {
        let ranges = texts
            .into_iter()
            .map(Range::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PrefixSet::new(ranges))
    }

    /// One address.
    pub fn single(ip: IpAddr) -> PrefixSet {
        let (v4, k) = key(ip);
        PrefixSet {
            ranges: vec![Range {
                v4,
                first: k,
                last: k,
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// The range holding (family, k), if any.
    fn find(&self, v4: bool, k: u128) -> Option<&Range> {
        let i = self.ranges.partition_point(|r| (!r.v4, r.last) < (!v4, k));
        self.ranges.get(i).filter(|r| r.v4 == v4 && r.first <= k)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, k) = key(ip);
        self.find(v4, k).is_some()
    }

    /// Whether every address of `other` is in this set.
    pub fn covers(&self, other: &PrefixSet) -> bool {
        other
            .ranges
            .iter()
            .all(|r| self.find(r.v4, r.first).is_some_and(|m| m.last >= r.last))
    }

    /// Whether any address of `other` is in this set.
    pub fn overlaps(&self, other: &PrefixSet) -> bool {
        other.ranges.iter().any(|r| {
            let i = self
                .ranges
                .partition_point(|m| (!m.v4, m.last) < (!r.v4, r.first));
            self.ranges
                .get(i)
                .is_some_and(|m| m.v4 == r.v4 && m.first <= r.last)
        })
    }

    /// The addresses of this set that are not in `other`.
    pub fn minus(&self, other: &PrefixSet) -> PrefixSet {
        let mut out = Vec::new();
        for r in &self.ranges {
            let mut first = r.first;
            let mut rest = true;
            let start = other
                .ranges
                .partition_point(|m| (!m.v4, m.last) < (!r.v4, r.first));
            for m in other.ranges[start..]
                .iter()
                .take_while(|m| m.v4 == r.v4 && m.first <= r.last)
            {
                if m.first > first {
                    out.push(Range {
                        v4: r.v4,
                        first,
                        last: m.first - 1,
                    });
                }
                match m.last.checked_add(1) {
                    Some(next) if m.last < r.last => first = next,
                    _ => {
                        rest = false;
                        break;
                    }
                }
            }
            if rest && first <= r.last {
                out.push(Range {
                    v4: r.v4,
                    first,
                    last: r.last,
                });
            }
        }
        PrefixSet::new(out)
    }

    pub fn union(&self, other: &PrefixSet) -> PrefixSet {
        PrefixSet::new(self.ranges.iter().chain(&other.ranges).copied().collect())
    }

    /// The fewest CIDR blocks covering exactly this set, IPv4 first.
    pub fn cidrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.ranges {
            r.cidrs(&mut out);
        }
        out
    }

    /// How many CIDR blocks `cidrs` would write, without writing them.
    pub fn len_ranges(&self) -> usize {
        self.ranges.len()
    }
}

/// The ranges that are not the public internet: RFC 1918, shared address space (RFC 6598),
/// loopback, link-local, and their IPv6 counterparts (ULA, link-local, loopback).
pub fn private() -> PrefixSet {
    PrefixSet::parse([
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ])
    .expect("the private ranges parse")
}

/// Every address of both families.
pub fn everything() -> PrefixSet {
    PrefixSet::parse(["0.0.0.0/0", "::/0"]).expect("the whole space parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PrefixSet {
        PrefixSet::parse(p.iter().copied()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_v4_v6_and_bare_addresses_and_refuses_junk() {
        let r = Range::parse("10.1.2.3/16").unwrap();
        assert!(r.contains(ip("10.1.255.255")));
        assert!(!r.contains(ip("10.2.0.0")));
        assert!(
            r.contains(ip("::ffff:10.1.0.1")),
            "a mapped address is its IPv4 address"
        );
        let r = Range::parse("2603:1000::/40").unwrap();
        assert!(r.contains(ip("2603:1000:ff::1")));
        assert!(!r.contains(ip("10.1.0.1")));
        let one = Range::parse("1.2.3.4").unwrap();
        assert_eq!(one.first, one.last);
        assert!(Range::parse("0.0.0.0/0").unwrap().contains(ip("255.1.1.1")));
        assert!(
            !Range::parse("::/0").unwrap().contains(ip("1.1.1.1")),
            "families apart"
        );
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129", "Storage", ""] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merges_covers_overlaps_and_subtracts() {
        let s = set(&[
            "10.0.0.0/25",
            "10.0.0.128/25",
            "10.0.2.0/24",
            "2001:db8::/32",
        ]);
        assert_eq!(s.ranges().len(), 3, "adjacent halves merged");
        assert!(s.contains(ip("10.0.0.200")));
        assert!(!s.contains(ip("10.0.1.1")));
        assert!(s.contains(ip("2001:db8::5")));
        assert!(s.covers(&set(&["10.0.0.0/24", "10.0.2.7"])));
        assert!(!s.covers(&set(&["10.0.0.0/23"])));
        assert!(s.overlaps(&set(&["10.0.0.0/23"])));
        assert!(!s.overlaps(&set(&["10.0.1.0/24", "2001:db9::/32"])));
        let left = set(&["10.0.0.0/22"]).minus(&s);
        assert_eq!(left.cidrs(), ["10.0.1.0/24", "10.0.3.0/24"]);
        assert!(set(&["10.0.0.0/24"]).minus(&set(&["0.0.0.0/0"])).is_empty());
        assert_eq!(
            set(&["10.0.0.0/24", "2001:db8::/32"])
                .minus(&set(&["10.0.0.0/25"]))
                .cidrs(),
            ["10.0.0.128/25", "2001:db8::/32"]
        );
    }

    #[test]
    fn aggregates_to_the_fewest_blocks() {
        let s = set(&[
            "20.0.0.0/24",
            "20.0.1.0/24",
            "20.0.2.0/23",
            "20.0.4.1",
            "2603:1::/48",
            "2603:1:1::/48",
        ]);
        assert_eq!(s.cidrs(), ["20.0.0.0/22", "20.0.4.1/32", "2603:1::/47"]);
        assert_eq!(everything().cidrs(), ["0.0.0.0/0", "::/0"]);
        assert_eq!(
            set(&["10.0.0.1", "10.0.0.2"]).cidrs(),
            ["10.0.0.1/32", "10.0.0.2/32"]
        );
    }
}
