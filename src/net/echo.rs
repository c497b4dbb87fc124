//! The echo exchange between `vnetprobe check --peer` and `vnetprobe listen`: one fixed-size
//! request carrying a fresh nonce, one reply that echoes it, both with an HMAC-SHA256 over the
//! exchange when both ends share a key. The same bytes travel over TCP and UDP.
//!
//! Why it is shaped like this:
//! - the nonce makes a reply belong to this exchange (a recorded reply does not verify again);
//! - the MAC covers the nonce, the protocol, the port and the responder's name, so a device on
//!   the path that answers in the responder's place (a transparent proxy, an NVA) cannot forge a
//!   reply without the key;
//! - a request is always [`REQUEST_LEN`] bytes and a reply never more, and anything else gets no
//!   reply: the responder cannot amplify traffic sent with a spoofed source.

use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Every request is exactly this long; a reply is at most this long.
pub const REQUEST_LEN: usize = 96;
/// The longest responder name a reply carries (longer names are cut).
pub const NAME_CAP: usize = REQUEST_LEN - HEADER_LEN;

const HEADER_LEN: usize = 60;
const MAC_AT: usize = 28;
const MAGIC_REQUEST: &[u8; 4] = b"VNPq";
const MAGIC_REPLY: &[u8; 4] = b"VNPr";
const VERSION: u8 = 1;
const FLAG_KEYED: u8 = 1;
const FLAG_REFUSED: u8 = 2;
const KEY_MIN: usize = 16;
const KEY_MAX: usize = 4096;

/// The shared secret of a responder and its checks. `Debug` never shows it.
#[derive(Clone)]
pub struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A key from its bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, String> {
        if bytes.len() < KEY_MIN {
            return Err(format!(
                "the key is {} bytes; it needs at least {KEY_MIN} (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
                bytes.len()
            ));
        }
        Ok(Key(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// Reads a key file: its bytes with trailing whitespace removed. The error says why, never
    /// the content; the caller's setting names the flag or file line.
    pub fn load(path: &Path) -> Result<Key, String> {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.len() > KEY_MAX as u64 {
            return Err(format!("larger than {KEY_MAX} bytes: not a key file"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        Key::from_bytes(&bytes[..end])
    }

    fn sign(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign()
    }

    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        hmac::verify(&self.0, &parts.concat(), tag).is_ok()
    }
}

crate::outcome::labelled! {
    /// The transport of an exchange; part of what the MAC covers.
    pub enum Transport {
        Tcp => "tcp",
        Udp => "udp",
    }
}

impl Transport {
    fn byte(self) -> u8 {
        match self {
            Transport::Tcp => b't',
            Transport::Udp => b'u',
        }
    }
}

const REQUEST_CONTEXT: &[u8] = b"vnetprobe echo v1 request";
const REPLY_CONTEXT: &[u8] = b"vnetprobe echo v1 reply";

/// A fresh random nonce.
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    SystemRandom::new()
        .fill(&mut n)
        .expect("the OS random source works");
    n
}

fn header(magic: &[u8; 4], flags: u8, t: Transport, port: u16, nonce: &[u8; 16]) -> [u8; MAC_AT] {
    let mut h = [0u8; MAC_AT];
    h[..4].copy_from_slice(magic);
    h[4] = VERSION;
    h[5] = flags;
    h[6] = t.byte();
    h[8..10].copy_from_slice(&port.to_be_bytes());
    h[12..28].copy_from_slice(nonce);
    h
}

/// The request a check sends to `port`; keyed when it holds a key.
pub fn request(key: Option<&Key>, t: Transport, port: u16, nonce: &[u8; 16]) -> [u8; REQUEST_LEN] {
    let flags = if key.is_some() { FLAG_KEYED } else { 0 };
    let h = header(MAGIC_REQUEST, flags, t, port, nonce);
    let mut out = [0u8; REQUEST_LEN];
    out[..MAC_AT].copy_from_slice(&h);
    if let Some(k) = key {
        out[MAC_AT..HEADER_LEN].copy_from_slice(k.sign(&[REQUEST_CONTEXT, &h]).as_ref());
    }
    out
}

/// Why a responder does not answer with an echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a vnetprobe request (wrong size, magic or version): no reply at all.
    Malformed,
    /// A request for another transport or port than the one it arrived on: no reply.
    Misdirected,
    /// The responder holds a key and the request is not signed with it: a short refusal.
    Unauthenticated,
}

/// What the responder makes of a request that arrived on `port` over `t`.
pub fn answer(
    req: &[u8],
    key: Option<&Key>,
    t: Transport,
    port: u16,
    name: &str,
) -> Result<Vec<u8>, (Refusal, Option<Vec<u8>>)> {
    if req.len() != REQUEST_LEN || &req[..4] != MAGIC_REQUEST || req[4] != VERSION {
        return Err((Refusal::Malformed, None));
    }
    if req[6] != t.byte() || req[8..10] != port.to_be_bytes() {
        return Err((Refusal::Misdirected, None));
    }
    let nonce: [u8; 16] = req[12..28].try_into().expect("16 bytes");
    if let Some(k) = key {
        let signed = req[5] & FLAG_KEYED != 0;
        if !signed || !k.verify(&[REQUEST_CONTEXT, &req[..MAC_AT]], &req[MAC_AT..HEADER_LEN]) {
            let h = header(MAGIC_REPLY, FLAG_REFUSED, t, port, &nonce);
            let mut out = vec![0u8; HEADER_LEN];
            out[..MAC_AT].copy_from_slice(&h);
            return Err((Refusal::Unauthenticated, Some(out)));
        }
    }
    Ok(reply(key, t, port, &nonce, name))
}

fn cut(name: &str) -> &[u8] {
    let mut end = name.len().min(NAME_CAP);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name.as_bytes()[..end]
}

/// A reply echoing `nonce`, signed when the responder holds a key.
pub fn reply(key: Option<&Key>, t: Transport, port: u16, nonce: &[u8; 16], name: &str) -> Vec<u8> {
    let name = cut(name);
    let flags = if key.is_some() { FLAG_KEYED } else { 0 };
    let mut h = header(MAGIC_REPLY, flags, t, port, nonce);
    h[7] = name.len() as u8;
    let mut out = Vec::with_capacity(HEADER_LEN + name.len());
    out.extend_from_slice(&h);
    match key {
        Some(k) => out.extend_from_slice(k.sign(&[REPLY_CONTEXT, &h, name]).as_ref()),
        None => out.extend_from_slice(&[0u8; HEADER_LEN - MAC_AT]),
    }
    out.extend_from_slice(name);
    out
}

/// Whether `buf` holds a whole reply (header and the name it announces), so a reader can stop.
pub fn is_complete(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && &buf[..4] == MAGIC_REPLY && buf.len() >= HEADER_LEN + buf[7] as usize
}

/// A reply as the check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// The responder's name (its host name), as it sent it.
    pub name: String,
    /// Whether the reply's MAC verified with the check's key.
    pub authenticated: bool,
}

/// Why a reply does not confirm the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a vnetprobe reply to this request: another service, or garbage.
    NotEcho(String),
    /// A vnetprobe-shaped reply that the key does not vouch for.
    NotAuthenticated(String),
}

/// Checks a reply against the request the check sent.
pub fn verify(
    reply: &[u8],
    key: Option<&Key>,
    t: Transport,
    port: u16,
    nonce: &[u8; 16],
) -> Result<Echo, Rejected> {
    if reply.len() < HEADER_LEN || &reply[..4] != MAGIC_REPLY {
        return Err(Rejected::NotEcho(format!(
            "{} bytes that are not a vnetprobe echo",
            reply.len()
        )));
    }
    if reply[4] != VERSION {
        return Err(Rejected::NotEcho(format!(
            "a vnetprobe echo of version {} (this vnetprobe speaks {VERSION})",
            reply[4]
        )));
    }
    if reply[12..28] != nonce[..] {
        return Err(Rejected::NotEcho(
            "an echo of another nonce: not a reply to this request".into(),
        ));
    }
    if reply[6] != t.byte() || reply[8..10] != port.to_be_bytes() {
        return Err(Rejected::NotEcho(format!(
            "an echo for another transport or port than {}/{port}",
            t.as_str()
        )));
    }
    let flags = reply[5];
    if flags & FLAG_REFUSED != 0 {
        return Err(Rejected::NotAuthenticated(match key {
            Some(_) => "the responder holds a key that does not verify this request: both ends need the same --key-file".into(),
            None => "the responder holds a key and answers only signed requests: give check the same --key-file".into(),
        }));
    }
    let name_len = reply[7] as usize;
    if reply.len() != HEADER_LEN + name_len {
        return Err(Rejected::NotEcho("a truncated or padded echo".into()));
    }
    let name = &reply[HEADER_LEN..];
    let shown = String::from_utf8_lossy(name).into_owned();
    let Some(k) = key else {
        return Ok(Echo {
            name: shown,
            authenticated: false,
        });
    };
    if flags & FLAG_KEYED == 0 {
        return Err(Rejected::NotAuthenticated(
            "the echo carries no MAC: the responder runs without --key-file, or something else answered in its place".into(),
        ));
    }
    if !k.verify(
        &[REPLY_CONTEXT, &reply[..MAC_AT], name],
        &reply[MAC_AT..HEADER_LEN],
    ) {
        return Err(Rejected::NotAuthenticated(
            "the echo's MAC does not verify with --key-file: the responder uses another key, or a device on the path forged the reply".into(),
        ));
    }
    Ok(Echo {
        name: shown,
        authenticated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn a_keyed_exchange_verifies_and_is_never_larger_than_its_request() {
        let (k, n) = (key(1), nonce());
        let req = request(Some(&k), Transport::Udp, 5831, &n);
        let long = "n".repeat(200);
        let rep = answer(&req, Some(&k), Transport::Udp, 5831, &long).unwrap();
        assert!(rep.len() <= req.len());
        let echo = verify(&rep, Some(&k), Transport::Udp, 5831, &n).unwrap();
        assert!(echo.authenticated);
        assert_eq!(echo.name.len(), NAME_CAP);
    }

    #[test]
    fn a_forged_or_foreign_reply_fails() {
        let (k, n) = (key(1), nonce());
        // A responder with another key refuses the request.
        let req = request(Some(&k), Transport::Tcp, 445, &n);
        let (why, refusal) = answer(&req, Some(&key(2)), Transport::Tcp, 445, "b").unwrap_err();
        assert_eq!(why, Refusal::Unauthenticated);
        let refusal = refusal.unwrap();
        assert!(refusal.len() <= REQUEST_LEN);
        assert!(matches!(
            verify(&refusal, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotAuthenticated(_))
        ));
        // A forger without the key: an unsigned echo, or one signed with another key.
        let unsigned = reply(None, Transport::Tcp, 445, &n, "b");
        assert!(matches!(
            verify(&unsigned, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotAuthenticated(_))
        ));
        let forged = reply(Some(&key(3)), Transport::Tcp, 445, &n, "b");
        assert!(matches!(
            verify(&forged, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotAuthenticated(_))
        ));
        // A genuine reply with its name changed on the way.
        let mut tampered = reply(Some(&k), Transport::Tcp, 445, &n, "b");
        *tampered.last_mut().unwrap() = b'c';
        assert!(matches!(
            verify(&tampered, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotAuthenticated(_))
        ));
        // Another exchange's reply, another port, or another service.
        let old = reply(Some(&k), Transport::Tcp, 445, &nonce(), "b");
        assert!(matches!(
            verify(&old, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotEcho(_))
        ));
        let other_port = reply(Some(&k), Transport::Tcp, 446, &n, "b");
        assert!(matches!(
            verify(&other_port, Some(&k), Transport::Tcp, 445, &n),
            Err(Rejected::NotEcho(_))
        ));
        assert!(matches!(
            verify(
                b"SSH-2.0-OpenSSH_9.2\r\n",
                Some(&k),
                Transport::Tcp,
                445,
                &n
            ),
            Err(Rejected::NotEcho(_))
        ));
    }

    #[test]
    fn malformed_and_misdirected_requests_get_no_reply() {
        let n = nonce();
        let req = request(None, Transport::Udp, 5831, &n);
        for bad in [&req[..50], &[0u8; REQUEST_LEN][..]] {
            assert_eq!(
                answer(bad, None, Transport::Udp, 5831, "a").unwrap_err(),
                (Refusal::Malformed, None)
            );
        }
        let mut longer = req.to_vec();
        longer.push(0);
        assert_eq!(
            answer(&longer, None, Transport::Udp, 5831, "a").unwrap_err(),
            (Refusal::Malformed, None)
        );
        assert_eq!(
            answer(&req, None, Transport::Tcp, 5831, "a").unwrap_err(),
            (Refusal::Misdirected, None)
        );
        assert_eq!(
            answer(&req, None, Transport::Udp, 5832, "a").unwrap_err(),
            (Refusal::Misdirected, None)
        );
    }

    #[test]
    fn an_unkeyed_exchange_passes_unauthenticated() {
        let n = nonce();
        let req = request(None, Transport::Udp, 9, &n);
        let rep = answer(&req, None, Transport::Udp, 9, "node-b").unwrap();
        let echo = verify(&rep, None, Transport::Udp, 9, &n).unwrap();
        assert_eq!((echo.name.as_str(), echo.authenticated), ("node-b", false));
    }

    #[test]
    fn key_files_are_checked_without_showing_them() {
        let dir = std::env::temp_dir().join(format!("vnetprobe-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "secret\n").unwrap();
        let e = Key::load(&short).unwrap_err();
        assert!(e.contains("at least 16"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        assert!(Key::load(&good).is_ok());
        assert!(!format!("{:?}", Key::load(&good).unwrap()).contains("0123"));
        let e = Key::load(&dir.join("missing")).unwrap_err();
        assert!(e.contains("No such file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
