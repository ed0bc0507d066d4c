//! Durable file output: buffered writes that know their position, fsync of files and
//! directories, and errors that name the path and what was being done to it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FileError {
    /// What was being done, e.g. "create", "write", "fsync".
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    pub(crate) fn new(action: &'static str, path: &Path, source: io::Error) -> FileError {
        FileError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Block files are written once, front to back; 4 MiB buffers keep syscalls rare.
const BUFFER_BYTES: usize = 4 << 20;

/// A new file written sequentially, counting the bytes written so far (section offsets in the
/// index and chunk offsets in segments are positions in the file).
#[derive(Debug)]
pub(crate) struct PositionedWriter {
    path: PathBuf,
    out: BufWriter<File>,
    position: u64,
}

impl PositionedWriter {
    /// Creates `path`, refusing to overwrite an existing file.
    pub(crate) fn create(path: &Path) -> Result<PositionedWriter, FileError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| FileError::new("create", path, e))?;
        Ok(PositionedWriter {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            position: 0,
        })
    }

    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), FileError> {
        self.out
            .write_all(bytes)
            .map_err(|e| FileError::new("write", &self.path, e))?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    /// Writes zero bytes until the position is a multiple of `alignment`.
    pub(crate) fn pad_to(&mut self, alignment: u64) -> Result<(), FileError> {
        let remainder = self.position % alignment;
        if remainder != 0 {
            const ZEROS: [u8; 64] = [0; 64];
            let padding = (alignment - remainder) as usize;
            debug_assert!(padding <= ZEROS.len());
            self.write_all(&ZEROS[..padding])?;
        }
        Ok(())
    }

    /// Flushes, fsyncs and closes the file; returns its size.
    pub(crate) fn finish(self) -> Result<u64, FileError> {
        let PositionedWriter {
            path,
            out,
            position,
        } = self;
        let file = out
            .into_inner()
            .map_err(|e| FileError::new("write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| FileError::new("fsync", &path, e))?;
        Ok(position)
    }
}

/// Fsyncs a directory, so that the entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<(), FileError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| FileError::new("fsync directory", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_padding_and_size_agree_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut writer = PositionedWriter::create(&path).unwrap();
        writer.write_all(b"abcde").unwrap();
        writer.pad_to(16).unwrap();
        assert_eq!(writer.position(), 16);
        writer.pad_to(16).unwrap();
        assert_eq!(writer.position(), 16, "aligned already: no padding");
        writer.write_all(b"x").unwrap();
        assert_eq!(writer.finish().unwrap(), 17);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 17);
        assert_eq!(&bytes[..5], b"abcde");
        assert!(bytes[5..16].iter().all(|&b| b == 0));
        sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn existing_files_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"keep").unwrap();
        let err = PositionedWriter::create(&path).unwrap_err();
        assert_eq!(err.action, "create");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    }
}
