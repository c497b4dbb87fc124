//! Selecting targets: profiles that exist, and ids that match `--only`.

use super::Catalog;

impl Catalog {
    /// Checks that every asked-for profile exists; the error names the flag.
    pub fn check_profiles(&self, asked: &[String]) -> Result<(), String> {
        for p in asked {
            if !self.profiles.iter().any(|q| &q.name == p) {
                return Err(format!(
                    "unknown profile {p:?} (known: {})",
                    self.profile_names().join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Shell-style glob with `*` and `?`, matched against a whole id.
pub fn glob_match(glob: &str, s: &str) -> bool {
    let (g, s): (Vec<char>, Vec<char>) = (glob.chars().collect(), s.chars().collect());
    let (mut gi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == s[si]) {
            gi += 1;
            si += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = si;
            gi += 1;
        } else if let Some(st) = star {
            gi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}
