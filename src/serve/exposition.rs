//! The /metrics body, prepared once per run: the text, and the same text gzip-compressed up to
//! a sync flush. A scrape appends the few lines that change on every scrape (the process
//! metrics) to either, as plain text or as a final stored deflate block with the CRC carried on
//! from the text's, so no scrape compresses the run's families again.

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use hyper::body::Bytes;

/// The gzip member header: deflate, no name, no time, "Unix".
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

pub struct Exposition {
    text: Bytes,
    /// Header and the text deflated up to a sync flush (byte-aligned, not final).
    gzip_head: Bytes,
    crc: crc32fast::Hasher,
}

impl Exposition {
    pub fn new(text: Bytes) -> Exposition {
        let mut deflate = DeflateEncoder::new(Vec::from(GZIP_HEADER), Compression::default());
        deflate
            .write_all(&text)
            .and_then(|_| deflate.flush())
            .expect("writing to memory");
        let gzip_head = Bytes::from(deflate.get_ref().clone());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&text);
        Exposition {
            text,
            gzip_head,
            crc,
        }
    }

    /// The text followed by `tail`.
    pub fn plain(&self, tail: &str) -> Bytes {
        Bytes::from([&self.text[..], tail.as_bytes()].concat())
    }

    /// The text followed by `tail`, as one gzip member.
    pub fn gzip(&self, tail: &str) -> Bytes {
        let tail = &tail.as_bytes()[..tail.len().min(u16::MAX as usize)];
        let len = tail.len() as u16;
        let mut out = Vec::with_capacity(self.gzip_head.len() + tail.len() + 13);
        out.extend_from_slice(&self.gzip_head);
        // A final stored block: BFINAL=1, BTYPE=00, byte-aligned after the sync flush.
        out.push(1);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(tail);
        // The CRC of the text, carried on over the tail.
        let mut crc = self.crc.clone();
        crc.update(tail);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        let size = (self.text.len() + tail.len()) as u32;
        out.extend_from_slice(&size.to_le_bytes());
        Bytes::from(out)
    }
}

/// Whether an Accept-Encoding value accepts gzip (a `gzip` or `*` coding whose q is not 0).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let q = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next_back()
            .unwrap_or(1.0);
        (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_gzip_body_decodes_to_the_plain_one() {
        let text: String = (0..2000)
            .map(|i| format!("vnetprobe_probe_success{{target=\"t{i}\"}} 1\n"))
            .collect();
        let e = Exposition::new(Bytes::from(text));
        for tail in ["", "process_open_fds 7\n"] {
            let gz = e.gzip(tail);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, e.plain(tail).to_vec());
            assert!(
                gz.len() * 5 < back.len(),
                "compressed: {} of {}",
                gz.len(),
                back.len()
            );
        }
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
    }
}
