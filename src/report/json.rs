//! The JSON renderer: the report as the contract in DESIGN.md shapes it.

use super::Report;

pub fn render(report: &Report) -> String {
    let mut s = crate::printable::json(report);
    s.push('\n');
    s
}
