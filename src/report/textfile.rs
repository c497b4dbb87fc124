//! The textfile writer for node_exporter's textfile collector: a reader sees the old file or the
//! new one, never half of one (temporary file in the same folder, fsync, rename).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The temporary file beside `path`: hidden and without the `.prom` suffix, so the collector
/// never reads it.
fn temporary(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "names a folder, not a file"))?;
    Ok(path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Whether `path` may be written: its folder exists, and it is absent or a regular file. The
/// rename would replace anything else (as root, `--textfile /dev/null` would replace the device
/// for the whole system); `check` asks before probing.
pub fn check_destination(path: &Path) -> io::Result<()> {
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return refuse(format!("{} is not a folder", dir.display())),
        Err(e) => {
            let why = format!("its folder {}: {e}", dir.display());
            return Err(io::Error::new(e.kind(), why));
        }
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            let what = if t.is_dir() {
                "a folder"
            } else if t.is_symlink() {
                "a symbolic link"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_fifo() {
                "a named pipe"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            refuse(format!(
                "exists and is {what}: only a regular file is replaced"
            ))
        }
    }
}

/// Replaces `path` with `text` atomically.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    check_destination(path)?;
    let tmp = temporary(path)?;
    let result = write_then_rename(&tmp, path, text.as_bytes());
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    // create_new refuses an existing file or symlink at the temporary name; one left by a crash
    // of a process with our pid is ours to remove.
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(tmp)
    };
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    // The rename lasts across a crash only once the folder is synced; the file is already
    // whole either way, so this is best effort (a folder may be writable but not readable).
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vnetprobe-textfile-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_a_regular_file_in_an_existing_folder_is_a_destination() {
        let dir = scratch("destination");
        assert!(check_destination(&dir.join("new.prom")).is_ok());
        fs::write(dir.join("old.prom"), "x").unwrap();
        assert!(check_destination(&dir.join("old.prom")).is_ok());
        std::os::unix::fs::symlink(dir.join("old.prom"), dir.join("link.prom")).unwrap();
        fs::create_dir(dir.join("sub.prom")).unwrap();
        for (path, why) in [
            (Path::new("/dev/null").to_path_buf(), "a character device"),
            (dir.join("link.prom"), "a symbolic link"),
            (dir.join("sub.prom"), "a folder"),
            (dir.join("missing/x.prom"), "its folder"),
            (dir.join("old.prom/x.prom"), "is not a folder"),
        ] {
            let e = check_destination(&path).unwrap_err().to_string();
            assert!(e.contains(why), "{}: {e}", path.display());
            assert!(write(&path, "y").is_err(), "{}", path.display());
        }
        assert!(
            fs::symlink_metadata(dir.join("link.prom"))
                .unwrap()
                .is_symlink()
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = scratch("replace");
        let path = dir.join("vnetprobe.prom");
        write(&path, "a 1\n").unwrap();
        write(&path, "b 2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "b 2\n");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("vnetprobe.prom")]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_stale_temporary_is_replaced() {
        let dir = scratch("stale");
        let path = dir.join("x.prom");
        fs::write(temporary(&path).unwrap(), "half").unwrap();
        write(&path, "whole\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "whole\n");
        assert!(!temporary(&path).unwrap().exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let err = write(Path::new("/nonexistent-vnetprobe-dir/x.prom"), "a 1\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
