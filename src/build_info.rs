//! What this binary is: version, git commit, target triple, static or not, compiler. Shown by
//! `--version` and carried as labels by `vnetprobe_build_info`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short commit hash, or "unknown" (a build outside git without VNETPROBE_GIT_COMMIT).
pub const COMMIT: &str = env!("VNETPROBE_GIT_COMMIT");
pub const TARGET: &str = env!("VNETPROBE_TARGET");
/// "yes" when the C runtime is linked statically (the musl build), else "no".
pub const STATIC: &str = env!("VNETPROBE_STATIC");
pub const RUSTC: &str = env!("VNETPROBE_RUSTC");

/// `vnetprobe --version`, in the manner of `rustc -vV`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("VNETPROBE_GIT_COMMIT"),
    "\ntarget: ",
    env!("VNETPROBE_TARGET"),
    "\nstatic: ",
    env!("VNETPROBE_STATIC"),
    "\nrustc: ",
    env!("VNETPROBE_RUSTC"),
);

/// The labels of `vnetprobe_build_info`, as node_exporter names them where it can.
pub fn labels() -> [(&'static str, &'static str); 5] {
    [
        ("version", VERSION),
        ("revision", COMMIT),
        ("target", TARGET),
        ("static", if STATIC == "yes" { "true" } else { "false" }),
        ("rustc_version", RUSTC),
    ]
}
