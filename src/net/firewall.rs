//! What Azure Firewall's application rules say to a client they deny, read from the answer.
//!
//! An application rule is a transparent proxy keyed on the HTTP Host header or the TLS SNI; on
//! 80, 443 and 1433 (and any port an application rule names) the firewall completes the TCP
//! handshake itself, whatever its rules say. A denied HTTP request is answered with status 470
//! and a text/plain body holding `Action: Deny` (the default rule: `Action: Deny. Reason: No
//! rule matched. Proceeding with default action.`; an explicit deny rule names its `Policy`,
//! `Rule Collection Group`, `Rule Collection` and `Rule`; threat intelligence says
//! `ThreatIntel: <category>`; older firewalls lead with `HTTP request from A:P to H:80.`).
//! Sources: Azure Firewall FAQ ("the Firewall itself responds to the client's TCP ping"),
//! "Azure Firewall rule processing logic", and the 470 body as clients report it.
//! A denied HTTPS flow has no documented client-side signal: TCP accepted, then closed or
//! reset right after the ClientHello (see `net::tls`); `ask` confirms such a name with one
//! HTTP request on port 80, where a 470 names the firewall for certain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::USER_AGENT;

/// The status Azure Firewall answers a denied HTTP request with.
pub const DENY_STATUS: u16 = 470;

/// The most of a deny answer that is read: the firewall's body is one or two sentences.
pub const MAX_ANSWER: usize = 4096;

/// The longest piece of the firewall's text that is quoted in a message.
const MAX_QUOTE: usize = 160;

/// A deny, as the firewall worded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deny {
    /// `Reason: ...` (the default rule's "No rule matched...").
    pub reason: Option<String>,
    pub policy: Option<String>,
    pub rule_collection_group: Option<String>,
    pub rule_collection: Option<String>,
    pub rule: Option<String>,
    /// `ThreatIntel: <category>`.
    pub threat_intel: Option<String>,
}

impl Deny {
    /// One line for a message: the reason, or the rule that denied, or what threat
    /// intelligence said; control characters removed, each piece capped.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.threat_intel {
            parts.push(format!("ThreatIntel: {t}"));
        }
        let named: Vec<String> = [
            ("policy", &self.policy),
            ("rule collection group", &self.rule_collection_group),
            ("rule collection", &self.rule_collection),
            ("rule", &self.rule),
        ]
        .iter()
        .filter_map(|(label, v)| v.as_ref().map(|v| format!("{label} '{v}'")))
        .collect();
        if !named.is_empty() {
            parts.push(format!("denied by {}", named.join(", ")));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("Reason: {r}"));
        }
        if parts.is_empty() {
            "Action: Deny".to_string()
        } else {
            format!("Action: Deny; {}", parts.join("; "))
        }
    }

    /// True when the default rule denied (no application rule matched), not an explicit rule.
    pub fn by_default(&self) -> bool {
        self.rule.is_none()
            && self.threat_intel.is_none()
            && self
                .reason
                .as_deref()
                .is_some_and(|r| r.to_ascii_lowercase().contains("no rule matched"))
    }
}

/// Reads an HTTP answer as Azure Firewall's deny: status 470 and a body holding `Action: Deny`
/// (whatever the reason phrase). Anything else is not the firewall's.
pub fn parse_deny(status: u16, body: &[u8]) -> Option<Deny> {
    if status != DENY_STATUS {
        return None;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER)]);
    let lower = text.to_ascii_lowercase();
    let at = lower.find("action: deny")?;
    let rest = &text[at..];
    // Older firewalls say "No rule matched" without the "Reason:" label.
    let reason = field(rest, "Reason:").or_else(|| {
        lower[at..]
            .contains("no rule matched")
            .then(|| "No rule matched".to_string())
    });
    Some(Deny {
        reason,
        policy: field(rest, "Policy:"),
        rule_collection_group: field(rest, "Rule Collection Group:"),
        // "Rule Collection:" and "Rule:" are also the tails of longer labels: take the first
        // one that is its own label.
        rule_collection: field(rest, "Rule Collection:"),
        rule: field(rest, "Rule:"),
        threat_intel: field(&text, "ThreatIntel:"),
    })
}

/// The value after `label` (matched case-insensitively, as a label of its own: not the tail
/// of a longer one such as `Rule Collection Group:` for `Rule:`), up to the end of its
/// sentence or line; cleaned and capped.
fn field(text: &str, label: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let want = label.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&want) {
        let start = from + i;
        from = start + want.len();
        let before = lower[..start].trim_end_matches(' ');
        let own = before.is_empty() || before.ends_with(['.', ',', ';', '\n', ':']);
        if !own {
            continue;
        }
        let value = &text[from..];
        // A sentence ends at ". " or a line end; a dot inside a name (a policy "fw.prod") stays.
        let end = value
            .char_indices()
            .find(|&(j, c)| {
                c == '\n'
                    || c == '\r'
                    || (c == '.' && value[j + 1..].starts_with([' ', '\n', '\r']))
            })
            .map_or(value.len(), |(j, _)| j);
        let value = clean(value[..end].trim().trim_end_matches('.'));
        if !value.is_empty() {
            return Some(value);
        }
    }
    None
}

fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control() && !crate::printable::is_hidden(*c))
        .take(MAX_QUOTE)
        .collect();
    if s.chars().count() > MAX_QUOTE {
        out.push('…');
    }
    out
}

/// The confirmations of one run: one `ask` per FQDN, shared by the probes that saw it reset
/// after the ClientHello (concurrent ones wait for the first), at most `MAX_NAMES` names.
#[derive(Default)]
pub struct Asked(Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<Deny>>>>>);

impl Asked {
    /// The most names a run confirms: beyond, a reset stays unconfirmed.
    pub const MAX_NAMES: usize = 256;

    /// Azure Firewall's deny for `host` on port 80 of `addr`'s address, asked once per name.
    pub async fn confirm(&self, addr: SocketAddr, host: &str, deadline: Instant) -> Option<Deny> {
        let key = host.to_ascii_lowercase();
        let cell = {
            let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if names.len() >= Self::MAX_NAMES && !names.contains_key(&key) {
                return None;
            }
            names.entry(key).or_default().clone()
        };
        let at = SocketAddr::new(addr.ip(), 80);
        cell.get_or_init(|| ask(at, host, deadline)).await.clone()
    }
}

/// Asks `http://host/` at `addr` (port 80) once, directly, before `deadline`: Azure Firewall's
/// deny when the answer is one, else None (another answer, no answer, or none in time).
/// Bounded: one request, at most `MAX_ANSWER` bytes read.
pub async fn ask(addr: SocketAddr, host: &str, deadline: Instant) -> Option<Deny> {
    let mut stream = timeout_at(deadline, tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        crate::address::bracketed(host)
    );
    timeout_at(deadline, stream.write_all(request.as_bytes()))
        .await
        .ok()?
        .ok()?;
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while answer.len() < MAX_ANSWER {
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n.min(MAX_ANSWER - answer.len())]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let end = match response.parse(&answer) {
        Ok(httparse::Status::Complete(end)) => end,
        _ => return None,
    };
    parse_deny(response.code?, &answer[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_answers_as_the_firewall_words_them() {
        let d = parse_deny(
            470,
            b"Action: Deny. Reason: No rule matched. Proceeding with default action.",
        )
        .unwrap();
        assert_eq!(d.reason.as_deref(), Some("No rule matched"));
        assert!(d.by_default());
        assert_eq!(d.describe(), "Action: Deny; Reason: No rule matched");

        let old = parse_deny(
            470,
            b"HTTP request from 10.0.2.4:50748 to sa1.queue.core.windows.net:80. Action: Deny. No rule matched. Proceeding with default action.",
        )
        .unwrap();
        assert!(old.by_default());
        assert_eq!(old.describe(), "Action: Deny; Reason: No rule matched");

        let explicit = parse_deny(
            470,
            b"HTTP request from 10.0.2.4:50748 to pypi.org:80. Action: Deny. Policy: fw-policy.prod. Rule Collection Group: DefaultApplicationRuleCollectionGroup. Rule Collection: deny-packages. Rule: no-pypi\r\n",
        )
        .unwrap();
        assert_eq!(explicit.policy.as_deref(), Some("fw-policy.prod"));
        assert_eq!(
            explicit.rule_collection_group.as_deref(),
            Some("DefaultApplicationRuleCollectionGroup")
        );
        assert_eq!(explicit.rule_collection.as_deref(), Some("deny-packages"));
        assert_eq!(explicit.rule.as_deref(), Some("no-pypi"));
        assert!(!explicit.by_default());
        assert!(
            explicit
                .describe()
                .contains("rule collection 'deny-packages', rule 'no-pypi'"),
            "{}",
            explicit.describe()
        );

        let ti = parse_deny(470, b"Action: Deny. ThreatIntel: Phishing").unwrap();
        assert_eq!(ti.threat_intel.as_deref(), Some("Phishing"));

        // Not the firewall's: another status, or a 470 without its words.
        assert_eq!(parse_deny(403, b"Action: Deny. Reason: x"), None);
        assert_eq!(parse_deny(470, b"<html>denied</html>"), None);
    }

    #[test]
    fn hostile_deny_bodies_are_cleaned_and_capped() {
        let mut body = b"Action: Deny. Reason: \x1b[2Jevil".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10_000));
        let d = parse_deny(470, &body).unwrap();
        let r = d.reason.unwrap();
        assert!(!r.contains('\x1b'), "{r:?}");
        assert!(r.chars().count() <= MAX_QUOTE + 1, "{}", r.len());
        assert!(parse_deny(470, &[0xff; 100]).is_none());
    }

    #[tokio::test]
    async fn ask_reads_a_470_on_port_80_and_nothing_else() {
        async fn server(answer: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<String>) {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let task = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 2048];
                let n = s.read(&mut buf).await.unwrap();
                s.write_all(answer).await.unwrap();
                String::from_utf8_lossy(&buf[..n]).into_owned()
            });
            (addr, task)
        }
        let deadline = || Instant::now() + std::time::Duration::from_secs(2);
        let (addr, req) = server(
            b"HTTP/1.1 470 status code 470\r\nContent-Type: text/plain\r\nContent-Length: 68\r\n\r\nAction: Deny. Reason: No rule matched. Proceeding with default action.",
        )
        .await;
        let d = ask(addr, "sa1.queue.core.windows.net", deadline()).await;
        assert!(d.is_some_and(|d| d.by_default()));
        let req = req.await.unwrap();
        assert!(
            req.starts_with("GET / HTTP/1.1\r\nHost: sa1.queue.core.windows.net\r\n"),
            "{req}"
        );
        let (addr, _) = server(b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n").await;
        assert_eq!(ask(addr, "x", deadline()).await, None);
    }
}
