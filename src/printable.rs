//! What may reach a terminal: text a peer chose (certificate names, HTTP reason phrases, proxy
//! replies, DNS names, IMDS values) with its control characters and escape sequences made
//! visible, so it can neither drive the terminal nor forge lines of output.

use std::borrow::Cow;

/// Control characters (C0, DEL, C1) and the bidirectional overrides that reorder what is shown.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `s` may hold a hidden character: a C0 byte, DEL, or the lead byte of a C1 control
/// (U+0080..U+009F start with 0xC2) or of a bidirectional mark (U+200E.., U+202A.., U+2066..
/// start with 0xE2). A byte scan, so plain ASCII text costs no character decoding.
fn may_hide(s: &str) -> bool {
    s.bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2)
}

/// `s` with every control character written as a visible escape (`\x1b`, `\u{202e}`).
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// Like `printable`, keeping line breaks: for our own multi-line messages.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n')
}

/// Pretty JSON with the control characters serde_json leaves raw (DEL, C1, bidirectional
/// overrides) written as `\uXXXX`. Outside strings JSON is ASCII, so only strings change.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(4096);
    write_json(&mut out, value).expect("serialising into memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// `json`, written as it is serialised: a large report never exists twice in memory.
pub fn write_json<W: std::io::Write, T: serde::Serialize + ?Sized>(
    out: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, JsonFormatter::default());
    value.serialize(&mut ser)
}

/// serde_json's pretty formatter, with the string fragments it would write raw escaped.
#[derive(Default)]
struct JsonFormatter(serde_json::ser::PrettyFormatter<'static>);

/// The formatter methods that only lay out: handed to the pretty formatter as they are.
macro_rules! pretty {
    ($($name:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $name<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            $($arg: $ty),*
        ) -> std::io::Result<()> {
            self.0.$name(w, $($arg),*)
        }
    )*};
}

impl serde_json::ser::Formatter for JsonFormatter {
    pretty! {
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        begin_object_value(),
        end_object_value(),
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let raw = |c: char| is_hidden(c) && !matches!(c, '\n' | '\t' | '\r');
        if !may_hide(fragment) {
            return w.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices().filter(|&(_, c)| raw(c)) {
            w.write_all(&fragment.as_bytes()[start..i])?;
            write!(w, "\\u{:04x}", c as u32)?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !may_hide(s) || !s.chars().any(|c| is_hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep(c) || !is_hidden(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_visible_text() {
        assert!(matches!(printable("plain text: ü"), Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\x1b]0;title\x07\x1b[2Jx\r\n\t\u{9b}1m\u{202e}"),
            "evil\\x1b]0;title\\x07\\x1b[2Jx\\x0d\\x0a\\x09\\u{9b}1m\\u{202e}"
        );
        assert_eq!(printable_lines("a\nb\x1bc"), "a\nb\\x1bc");
        let safe = json(&["\x1b\u{7f}\u{9b}\u{202e}"]);
        assert_eq!(
            safe,
            serde_json::to_string_pretty(&["\x1b\u{7f}\u{9b}\u{202e}"])
                .unwrap()
                .replace('\u{7f}', "\\u007f")
                .replace('\u{9b}', "\\u009b")
                .replace('\u{202e}', "\\u202e")
        );
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe}");
        let back: Vec<String> = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, ["\x1b\u{7f}\u{9b}\u{202e}"]);
    }

    #[test]
    fn the_byte_scan_sees_every_hidden_character() {
        let hidden = (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_hidden(c));
        let mut n = 0;
        for c in hidden {
            assert!(may_hide(&format!("x{c}y")), "U+{:04X} slips past", c as u32);
            n += 1;
        }
        assert!(n > 60, "{n}");
        assert!(!may_hide("plain ascii, \u{e9} and \u{4e2d}"));
    }
}
