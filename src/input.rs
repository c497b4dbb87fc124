//! Reading the files a user names (config, catalogs, web config, certificates, reports): regular
//! files only, each under a size cap, so `/dev/zero`, a FIFO or a runaway file is an error that
//! names it instead of a hang or unbounded memory.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Config file, web config.
pub const SMALL: u64 = 1 << 20;
/// PEM bundles (a system store is a few hundred KB).
pub const PEM: u64 = 8 << 20;
/// One catalog file (16,000 targets are about 5 MB).
pub const CATALOG: u64 = 32 << 20;
/// One JSON report given to `merge`.
pub const REPORT: u64 = 64 << 20;

/// The bytes of `path`, or an error when it is not a regular file or holds more than `cap`.
pub fn read(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    // Non-blocking, so opening a FIFO without a writer does not wait; a regular file ignores it.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    // `--config /dev/null` is the usual way to say "no file": it reads as empty.
    if meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3) {
        return Ok(Vec::new());
    }
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "a device, FIFO or socket"
        };
        return Err(io::Error::other(format!(
            "not a regular file (it is {what})"
        )));
    }
    if meta.len() > cap {
        return Err(too_large(cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size may change while reading: the cap holds anyway.
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(bytes)
}

/// The text of `path` (UTF-8), under the same rules as `read`.
pub fn read_text(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read(path, cap)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn too_large(cap: u64) -> io::Error {
    let cap = match cap {
        c if c >= 1 << 20 => format!("{} MiB", c >> 20),
        c => format!("{c} bytes"),
    };
    io::Error::other(format!("larger than {cap}, the most this file may hold"))
}

/// The line of any byte offset in one text: one pass to index it, then a binary search per
/// question, so naming the line of every target stays linear in the file's size.
pub struct Lines(Vec<usize>);

impl Lines {
    pub fn new(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// 1-based, like `line_of`.
    pub fn of(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}

/// The 1-based line of a byte offset; for many offsets into one text, use `Lines`.
pub fn line_of(text: &str, offset: usize) -> usize {
    Lines::new(text).of(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_fifos_and_large_files_are_refused() {
        assert_eq!(read(Path::new("/dev/null"), SMALL).unwrap(), b"");
        let e = read(Path::new("/dev/zero"), SMALL).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read(Path::new("/"), SMALL).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");

        let dir = std::env::temp_dir().join(format!("vnetprobe-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo, SMALL).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");

        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; (SMALL + 1) as usize]).unwrap();
        let e = read(&big, SMALL).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        assert_eq!(read(&big, SMALL + 1).unwrap().len() as u64, SMALL + 1);

        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(
            read_text(&big, SMALL)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
