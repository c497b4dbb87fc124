//! A catalog file cut into its tables: a large catalog is parsed a table at a time, and every
//! error names the line in the file.

use super::CatalogError;
use crate::input::line_of;

/// One table of a catalog file (or what precedes the first): a large catalog is parsed a table
/// at a time, since the TOML document of a whole file costs many times the targets it holds.
pub(crate) struct Section<'a> {
    pub(super) text: &'a str,
    /// The 1-based line of the section's first line in its file.
    pub(super) first_line: usize,
    /// Whether it is a `[[target]]` table (its first line that is not blank or a comment).
    target: bool,
}

impl<'a> Section<'a> {
    fn new(text: &'a str, first_line: usize) -> Section<'a> {
        let target = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with("[[target]]"));
        Section {
            text,
            first_line,
            target,
        }
    }

    pub(super) fn is_target(&self) -> bool {
        self.target
    }

    /// The line in the file of a byte offset into the section.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.first_line + line_of(self.text, offset) - 1
    }

    pub(super) fn parse<T: serde::de::DeserializeOwned>(
        &self,
        file: &str,
    ) -> Result<T, CatalogError> {
        toml::from_str(self.text).map_err(|e| CatalogError {
            file: file.to_string(),
            line: e.span().map(|s| self.line(s.start)),
            field: None,
            message: e.message().trim().to_string(),
        })
    }
}

/// Cuts `text` before every table header (`[...]` or `[[...]]` at the start of a line), outside
/// multi-line strings.
pub(crate) fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    let (mut start, mut start_line, mut line_no) = (0, 1, 1);
    let (mut basic, mut literal) = (false, false);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let header = !basic && !literal && line.trim_start().starts_with('[');
        if header && offset > start {
            out.push(Section::new(&text[start..offset], start_line));
            (start, start_line) = (offset, line_no);
        }
        // Few lines hold a triple quote: a byte scan before the string searches.
        if line
            .as_bytes()
            .windows(3)
            .any(|w| w == b"\"\"\"" || w == b"\'\'\'")
        {
            basic ^= line.matches("\"\"\"").count() % 2 == 1;
            literal ^= line.matches("\'\'\'").count() % 2 == 1;
        }
        offset += line.len();
        line_no += 1;
    }
    out.push(Section::new(&text[start..], start_line));
    out
}
