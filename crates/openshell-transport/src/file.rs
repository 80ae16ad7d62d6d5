//! Reading a small file someone else may have named (TLS material, an engine's client
//! configuration) without ever blocking or running out of memory: it is opened without
//! blocking (`O_NONBLOCK`: a FIFO's open does not wait for a writer), only a regular file is
//! read, a read that would block (`/proc/kmsg` is "regular" and blocks) fails at once, and at
//! most `max` bytes are taken (`/dev/zero` behind a link is not regular anyway).

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The bytes of the regular file at `path`, of at most `max` bytes; any other file type, a
/// read that would block and a larger file are errors that say so.
pub fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    match file.take(max.saturating_add(1)).read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a file whose read would block, not a regular file's contents",
            ))
        }
        Err(e) => return Err(e),
    }
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_small`] as UTF-8 text.
pub fn read_small_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_small(path, max)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a device and an oversized file are refused at once, never waited on or read
    /// whole; a small regular file is read.
    #[test]
    fn only_small_regular_files_are_read_and_nothing_blocks() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(made.success());
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap_or_else(|e| panic!("{e}"));
        for path in [fifo.as_path(), zero.as_path(), Path::new("/dev/null")] {
            let err = read_small(path, 16).err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.to_string().contains("not a regular file")),
                "{path:?}: {err:?}"
            );
        }
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 17]).unwrap_or_else(|e| panic!("{e}"));
        assert!(read_small(&big, 16).is_err());
        assert_eq!(read_small(&big, 17).unwrap_or_default().len(), 17);
    }
}
