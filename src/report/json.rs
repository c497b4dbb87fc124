//! The JSON renderer: the report as the contract in DESIGN.md shapes it.

use super::Report;

pub fn render(report: &Report) -> String {
    let s = serde_json::to_string_pretty(report).expect("a report always serialises");
    let mut s = crate::printable::json(s);
    s.push('\n');
    s
}
