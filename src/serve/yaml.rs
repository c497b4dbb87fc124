//! The YAML subset that web config files use: nested block mappings whose leaves are scalars
//! (plain, 'single' or "double" quoted), with comments. Anything else (lists, flow collections,
//! anchors, block scalars) is an error naming its line, never a guess.

/// A value in the subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Scalar(String),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping, with the line it was written on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Value,
}

/// A parse error: the line (1-based) and what is wrong there.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, YamlError>;

fn err<T>(line: usize, message: impl Into<String>) -> Result<T> {
    Err(YamlError {
        line,
        message: message.into(),
    })
}

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// Parses a document whose top level is a mapping (an empty document is an empty mapping).
pub fn parse(text: &str) -> Result<Vec<Entry>> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let body = strip_comment(raw, number)?;
        let trimmed = body.trim_start_matches(' ');
        if trimmed.starts_with('\t') {
            return err(
                number,
                "a tab in the indentation (YAML indents with spaces)",
            );
        }
        let content = trimmed.trim_end();
        if content.is_empty() || (lines.is_empty() && content == "---") {
            continue;
        }
        if content == "---" || content == "..." {
            return err(number, "only one document per file");
        }
        if content.starts_with('%') && lines.is_empty() {
            return err(number, "YAML directives are not supported");
        }
        lines.push(Line {
            number,
            indent: body.len() - trimmed.len(),
            text: content,
        });
    }
    let mut at = 0;
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    let entries = mapping(&lines, &mut at, first.indent)?;
    match lines.get(at) {
        Some(l) => err(l.number, "indentation does not match any key above"),
        None => Ok(entries),
    }
}

fn mapping(lines: &[Line], at: &mut usize, indent: usize) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return err(line.number, "unexpected indentation");
        }
        let (key, rest) = split_key(line)?;
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            return err(
                line.number,
                format!("key `{key}` repeats (first on line {})", first.line),
            );
        }
        *at += 1;
        let nested = lines.get(*at).filter(|next| next.indent > indent);
        let value = match (rest.is_empty(), nested) {
            (true, Some(next)) => Value::Map(mapping(lines, at, next.indent)?),
            (true, None) => Value::Null,
            (false, nested) => {
                let value = scalar(rest, line.number)?;
                if let Some(next) = nested {
                    return err(next.number, "unexpected indentation");
                }
                value
            }
        };
        entries.push(Entry {
            key,
            line: line.number,
            value,
        });
    }
    Ok(entries)
}

/// Splits `key: rest`; the key may be quoted.
fn split_key<'a>(line: &Line<'a>) -> Result<(String, &'a str)> {
    let t = line.text;
    if t.starts_with("- ") || t == "-" {
        return err(line.number, "lists are not supported here");
    }
    if t.starts_with('?') {
        return err(line.number, "complex keys are not supported");
    }
    let (key, after) = match t.chars().next() {
        Some(q @ ('\'' | '"')) => {
            let end = closing_quote(t, q).ok_or_else(|| YamlError {
                line: line.number,
                message: "unclosed quote".into(),
            })?;
            let key = match scalar(&t[..=end], line.number)? {
                Value::Scalar(s) => s,
                _ => unreachable!("a quoted scalar is a scalar"),
            };
            (key, t[end + 1..].trim_start())
        }
        _ => {
            let colon = t
                .match_indices(':')
                .map(|(i, _)| i)
                .find(|&i| t[i + 1..].is_empty() || t[i + 1..].starts_with(' '))
                .ok_or_else(|| YamlError {
                    line: line.number,
                    message: format!("expected `key: value`, found {t:?}"),
                })?;
            (t[..colon].trim_end().to_string(), &t[colon..])
        }
    };
    match after.strip_prefix(':') {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => Ok((key, rest.trim())),
        _ => err(line.number, format!("expected `:` after the key `{key}`")),
    }
}

/// The index of the quote closing the one at 0 ('' escapes inside single quotes, \ inside double).
fn closing_quote(t: &str, q: char) -> Option<usize> {
    let bytes = t.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match (q, bytes[i]) {
            ('"', b'\\') => i += 1,
            ('\'', b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 1,
            (_, b) if b == q as u8 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn scalar(raw: &str, line: usize) -> Result<Value> {
    let first = raw.chars().next().unwrap_or(' ');
    match first {
        '\'' | '"' => {
            if closing_quote(raw, first) != Some(raw.len() - 1) {
                return err(line, "text after the closing quote, or an unclosed quote");
            }
            let inner = &raw[1..raw.len() - 1];
            if first == '\'' {
                Ok(Value::Scalar(inner.replace("''", "'")))
            } else {
                unescape(inner, line).map(Value::Scalar)
            }
        }
        '[' | '{' => err(
            line,
            "flow collections ([...] or {...}) are not supported: write one key per line",
        ),
        '|' | '>' => err(
            line,
            "block scalars (| or >) are not supported: put the text in a file and name the file",
        ),
        '&' | '*' | '!' => err(line, "anchors, aliases and tags are not supported"),
        '@' | '`' => err(
            line,
            format!("a plain value cannot start with {first:?}: quote it"),
        ),
        '-' if raw.len() == 1 || raw.starts_with("- ") => err(line, "lists are not supported here"),
        _ if matches!(raw, "~" | "null" | "Null" | "NULL") => Ok(Value::Null),
        _ => Ok(Value::Scalar(raw.to_string())),
    }
}

fn unescape(s: &str, line: usize) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('/') => out.push('/'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            other => {
                return err(
                    line,
                    format!(
                        "unsupported escape \\{}",
                        other.map(String::from).unwrap_or_default()
                    ),
                );
            }
        }
    }
    Ok(out)
}

/// The line without its comment: a `#` at the start or after a space, outside quotes.
fn strip_comment(raw: &str, line: usize) -> Result<&str> {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => {
                if q == '\'' && chars.peek().map(|(_, n)| *n) == Some('\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if c == '#' && (prev == ' ' || prev == '\t') => return Ok(&raw[..i]),
            // A quote opens a quoted scalar only where one can start: after `: `, or at the key.
            None if (c == '"' || c == '\'') && (prev == ' ' || i == 0) => quote = Some(c),
            None => {}
        }
        prev = c;
    }
    match quote {
        Some(_) => err(
            line,
            "unclosed quote (quoted values must end on the same line)",
        ),
        None => Ok(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Scalar(v.into())
    }

    #[test]
    fn nested_mappings_scalars_and_comments() {
        let doc = "---\n# web config\ntls_server_config:\n  cert_file: /etc/x.crt # the cert\n  key_file: 'it''s.key'\nbasic_auth_users:\n  \"al ice\": \"$2y$10$a\\\\b#c\"\n  bob: $2b$04$x#y\nempty:\n";
        let top = parse(doc).unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].key, "tls_server_config");
        assert_eq!(top[0].line, 3);
        let Value::Map(tls) = &top[0].value else {
            panic!()
        };
        assert_eq!(
            tls[0],
            Entry {
                key: "cert_file".into(),
                line: 4,
                value: s("/etc/x.crt")
            }
        );
        assert_eq!(tls[1].value, s("it's.key"));
        let Value::Map(users) = &top[1].value else {
            panic!()
        };
        assert_eq!(users[0].key, "al ice");
        assert_eq!(users[0].value, s("$2y$10$a\\b#c"));
        assert_eq!(
            users[1].value,
            s("$2b$04$x#y"),
            "a # inside a word is no comment"
        );
        assert_eq!(top[2].value, Value::Null);
    }

    #[test]
    fn empty_and_comment_only_documents_are_empty_mappings() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("# nothing\n\n").unwrap(), vec![]);
    }

    #[test]
    fn outside_the_subset_is_an_error_with_its_line() {
        let cases = [
            ("a:\n  - x\n", 2, "lists"),
            ("a: [x, y]\n", 1, "flow"),
            ("a: |\n  text\n", 1, "block scalars"),
            ("a:\n\tb: 1\n", 2, "tab"),
            ("a: 1\na: 2\n", 2, "repeats"),
            ("a: 1\n  b: 2\n", 2, "indentation"),
            ("a:\n    b: 1\n  c: 2\n", 3, "indentation"),
            ("a: 'open\n", 1, "unclosed"),
            ("just text\n", 1, "key: value"),
            ("a: &x 1\n", 1, "anchors"),
            ("a: \"\\q\"\n", 1, "escape"),
            ("a: 1\n---\nb: 2\n", 2, "one document"),
        ];
        for (doc, line, words) in cases {
            let e = parse(doc).unwrap_err();
            assert_eq!(e.line, line, "{doc:?}: {e:?}");
            assert!(e.message.contains(words), "{doc:?}: {e:?}");
        }
    }
}
