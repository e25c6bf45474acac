//! The disk-space reserve that lets a store on a full disk be emptied.
//!
//! SQLite cannot delete without writing: in WAL mode every page a delete changes
//! is first appended to the `-wal` file. On a disk with no free block left, a
//! delete fails exactly like a delivery does (`SQLITE_FULL`), and a store that
//! filled the disk could not be emptied through sokkel at all.
//!
//! So the store keeps [`RESERVE_BYTES`] of the disk for itself in a file next to
//! the database, `mail.db-reserve`, written with real blocks (bytes that do not
//! compress, written out: not a sparse file). Deliveries never touch it: when the disk
//! fills, they fail with [`crate::StoreError::Full`] as before. When a *delete*
//! fails that way, the store removes the reserve and tries again, with the
//! freed blocks to write its WAL into:
//!
//! ```text
//! disk full ─▶ deliver: Full (451)       reserve kept
//!           ─▶ delete:  Full ─▶ remove reserve ─▶ delete again: Ok
//!              delete --all: Ok ─▶ VACUUM + checkpoint give the file's space back
//!                            ─▶ reserve written again (if the disk has room now)
//! ```
//!
//! The reserve is written again, best effort, whenever a store is opened or a
//! delete succeeds while it is missing; on a disk still full that attempt fails
//! and leaves nothing behind. Any process that opens the store (the server, the
//! CLI) manages the same file; two writing it at once write the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How much disk the reserve holds: room for the WAL of a few delete batches
/// (`DELETE_BATCH` in store.rs: at most about 2 MiB each) and the WAL index, for
/// the first delete that fails on a full disk, its retry, and the clean-up after.
pub(crate) const RESERVE_BYTES: u64 = 8 << 20;

/// The reserve file of one store.
#[derive(Debug)]
pub(crate) struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve of the database at `db`: `db` with `-reserve` appended, beside
    /// SQLite's own `-wal` and `-shm`.
    pub(crate) fn of(db: &Path) -> Reserve {
        let mut path = db.as_os_str().to_owned();
        path.push("-reserve");
        Reserve {
            path: PathBuf::from(path),
        }
    }

    /// Whether the reserve is there, whole, with its blocks.
    pub(crate) fn is_held(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|meta| {
            #[cfg(unix)]
            let allocated = {
                use std::os::unix::fs::MetadataExt;
                meta.blocks().saturating_mul(512) >= RESERVE_BYTES
            };
            #[cfg(not(unix))]
            let allocated = true;
            meta.len() == RESERVE_BYTES && allocated
        })
    }

    /// Make sure the reserve exists, writing it if it is missing or short. Best
    /// effort: on a disk without room for it, the partial file is removed again
    /// and the store simply has no reserve until the next try. Returns whether the
    /// reserve is held afterwards.
    pub(crate) fn ensure(&self) -> bool {
        if self.is_held() {
            return true;
        }
        match self.write() {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), "wrote the mail store's disk reserve");
                true
            }
            Err(error) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::debug!(
                    %error,
                    path = %self.path.display(),
                    "no room for the mail store's disk reserve yet"
                );
                false
            }
        }
    }

    /// Give the reserve's blocks back to the disk. Returns whether there was a
    /// reserve to give.
    pub(crate) fn release(&self) -> bool {
        match std::fs::remove_file(&self.path) {
            Ok(()) => true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => {
                tracing::warn!(
                    %error,
                    path = %self.path.display(),
                    "cannot remove the mail store's disk reserve"
                );
                false
            }
        }
    }

    fn write(&self) -> io::Result<()> {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        // Bytes written out, not `set_len`: a sparse file holds no blocks, and
        // removing it would free nothing. Not zeros either, nor anything that
        // compresses: file systems that compress (btrfs, ZFS) store those in
        // next to no blocks.
        let noise = noise(1 << 20);
        let mut left = RESERVE_BYTES;
        while left > 0 {
            let n = left.min(noise.len() as u64) as usize;
            file.write_all(&noise[..n])?;
            left -= n as u64;
        }
        // No fsync: the file system takes the blocks (or answers ENOSPC) when the
        // write returns, which is what the reserve is for. A crash may lose the
        // file's blocks; `is_held` then sees it short and it is written again.
        file.flush()
    }
}

/// `len` bytes that do not compress (xorshift64), the same every time.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_released_and_written_again() {
        let dir = tempfile::TempDir::new().unwrap();
        let reserve = Reserve::of(&dir.path().join("mail.db"));
        assert_eq!(reserve.path, dir.path().join("mail.db-reserve"));
        assert!(!reserve.is_held());
        assert!(reserve.ensure());
        assert_eq!(
            std::fs::metadata(&reserve.path).unwrap().len(),
            RESERVE_BYTES
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&reserve.path).unwrap().blocks();
            assert!(blocks * 512 >= RESERVE_BYTES, "sparse: {blocks} blocks");
        }
        assert!(reserve.release());
        assert!(!reserve.release(), "released twice");
        std::fs::write(&reserve.path, b"short").unwrap();
        assert!(!reserve.is_held());
        assert!(reserve.ensure());
        assert!(reserve.is_held());
    }
}
