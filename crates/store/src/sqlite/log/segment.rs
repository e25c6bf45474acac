//! Segment files: their header, making and recycling them, and the scan that
//! finds where the valid records end (recovery).
//!
//! ```text
//! segment = header[32]  record*  (zeros or stale bytes to the preallocated size)
//! header  = "SOKKLOG1"  number:u64  prev_end:u64  store_id:u64  crc:u32  zero[12]
//! ```
//!
//! `prev_end` is where the records of segment `number - 1` end: the appender
//! writes it when it leaves that segment, normally after its last record, but
//! after a failed sync at the start of the batch that failed, and after a
//! restart at the end the scan found. The scan trusts it over what the older
//! segment seems to hold, so records that never got a 250 are not brought
//! back by a later segment being read.
//!
//! `store_id` ties the log to its database (a random number in the
//! database's `store_state`): segments of another store's log, or of a log
//! whose database was deleted and made anew beside it, are spares, and their
//! records fail the checksum, which the store id salts. Segment numbers are
//! never reused within a log directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Position;
use super::record::{self, HEADER, Key};

/// Bytes of a segment's header; its first record starts there.
pub(super) const SEGMENT_HEADER: u64 = 48;

const MAGIC: &[u8; 8] = b"SOKKLOG1";

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    pub(super) number: u64,
    /// Where the previous segment's records end; 0 if this is the first.
    pub(super) prev_end: u64,
    pub(super) store_id: u64,
}

impl SegmentHeader {
    pub(super) fn bytes(&self) -> [u8; SEGMENT_HEADER as usize] {
        let mut out = [0; SEGMENT_HEADER as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.number.to_le_bytes());
        out[16..24].copy_from_slice(&self.prev_end.to_le_bytes());
        out[24..32].copy_from_slice(&self.store_id.to_le_bytes());
        let crc = crc32fast::hash(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn parse(bytes: &[u8; SEGMENT_HEADER as usize]) -> Option<SegmentHeader> {
        let crc = u32::from_le_bytes(bytes[32..36].try_into().ok()?);
        if &bytes[..8] != MAGIC || crc32fast::hash(&bytes[..32]) != crc {
            return None;
        }
        Some(SegmentHeader {
            number: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            prev_end: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
            store_id: u64::from_le_bytes(bytes[24..32].try_into().ok()?),
        })
    }

    pub(super) fn read(file: &File) -> Option<SegmentHeader> {
        let mut bytes = [0; SEGMENT_HEADER as usize];
        file.read_exact_at(&mut bytes, 0).ok()?;
        SegmentHeader::parse(&bytes)
    }
}

/// The name of segment `number` in `dir`.
pub(super) fn path_of(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}.seg"))
}

/// The name a freed segment waits under until it is reused.
pub(super) fn spare_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("spare-{number:016x}.seg"))
}

/// Make a new file of `size` zero bytes at `path`, durably (data, then the
/// directory entry), so that writing records into it later changes no
/// metadata and each `fdatasync` flushes data alone.
///
/// With `pace`, each megabyte is synced on its own and followed by that
/// pause: a spare made while deliveries go on then never puts more than a
/// megabyte of writes in the disk's queue ahead of the appender's sync (16 MiB
/// at once held the 250s back by 10–20 ms).
pub(super) fn create_zeroed(
    dir: &Path,
    path: &Path,
    size: u64,
    pace: Option<Duration>,
) -> io::Result<()> {
    let partial = path.with_extension("new");
    let made = write_zeros(&partial, size, pace).and_then(|()| fs::rename(&partial, path));
    if made.is_err() {
        // On a full disk a partial file would hold on to what room is left.
        let _ = fs::remove_file(&partial);
    }
    made?;
    sync_dir(dir)
}

fn write_zeros(path: &Path, size: u64, pace: Option<Duration>) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0; (1 << 20).min(size as usize).max(1)];
    let mut written = 0;
    while written < size {
        let n = zeros.len().min((size - written) as usize);
        file.write_all_at(&zeros[..n], written)?;
        written += n as u64;
        if let Some(pause) = pace {
            file.sync_data()?;
            std::thread::sleep(pause);
        }
    }
    file.sync_all()
}

/// Remove what a process that died while making a spare left half made.
pub(super) fn remove_partial(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "new") {
            let _ = fs::remove_file(&path);
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One segment the scan found.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) number: u64,
    pub(super) path: PathBuf,
    /// Where its valid records end.
    pub(super) end: u64,
}

/// What a scan of the log found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// The segments from the starting position on, in order, each with where
    /// its valid records end.
    pub(super) segments: Vec<Found>,
    /// Files that hold no live segment: reusable.
    pub(super) spares: Vec<PathBuf>,
    /// The end of the last valid record (the starting position if none).
    pub(super) end: Position,
    /// The highest id of a valid record after the starting position.
    pub(super) max_id: i64,
    /// Records after the starting position.
    pub(super) records: u64,
    /// The highest segment number this store's log has used (in a live
    /// segment or a spare): new segments are numbered above it.
    pub(super) max_number: u64,
}

/// Scan the log in `dir` from `from` (where the store's rows end): every
/// segment file's header, then the records of the segments numbered
/// `from.segment` and up, each until the first record that is incomplete or
/// fails its checksum, or until where the next segment says it ends.
pub(super) fn scan(dir: &Path, store_id: u64, from: Position) -> io::Result<Scan> {
    let mut live = Vec::new();
    let mut scan = Scan {
        end: from,
        ..Scan::default()
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(scan),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "seg") {
            continue;
        }
        let header = File::open(&path)
            .ok()
            .and_then(|file| SegmentHeader::read(&file));
        match header {
            Some(header) if header.store_id == store_id => {
                scan.max_number = scan.max_number.max(header.number);
                if header.number >= from.segment.max(1) {
                    live.push((header, path));
                } else {
                    scan.spares.push(path);
                }
            }
            _ => scan.spares.push(path),
        }
    }
    live.sort_by_key(|(header, _)| header.number);
    // Only an unbroken run counts: a gap means a segment was lost (the
    // records after it cannot be trusted to follow on), and a segment whose
    // number repeats is a copy. The run may start above `from.segment`: the
    // owner recycles a segment once its rows are durable, so a follower that
    // read `from` just before may find it gone, and what it waits for is in
    // the segments after.
    let mut run: Vec<(SegmentHeader, PathBuf)> = Vec::new();
    for (header, path) in live {
        let follows = match run.last() {
            None => true,
            Some((last, _)) => header.number == last.number + 1,
        };
        if follows {
            run.push((header, path));
        } else {
            tracing::warn!(
                segment = %path.display(),
                "the mail store's log has a segment out of sequence; ignoring it and what follows"
            );
            scan.spares.push(path);
        }
    }
    for (at, (header, path)) in run.iter().enumerate() {
        let limit = run.get(at + 1).map(|(next, _)| next.prev_end);
        let start = if header.number == from.segment {
            from.offset.max(SEGMENT_HEADER)
        } else {
            SEGMENT_HEADER
        };
        let file = match File::open(path) {
            Ok(file) => file,
            // Only a process that does not own the log scans while it
            // changes: the owner recycled this segment after reading the
            // directory, which it does once the segment's rows are stored,
            // so nothing in it is waited for.
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let key = Key {
            store_id,
            segment: header.number,
        };
        let end = walk(&file, key, start, limit, |id, _| {
            scan.max_id = scan.max_id.max(id);
            scan.records += 1;
            true
        })?;
        scan.end = Position {
            segment: header.number,
            offset: end,
        };
        scan.segments.push(Found {
            number: header.number,
            path: path.clone(),
            end,
        });
    }
    Ok(scan)
}

/// Walk the valid records (sealed with `key`) in `file` from `start`, up to
/// `limit` if given, calling `each(id, record bytes)` until it answers
/// `false`; where the records walked end.
pub(super) fn walk(
    file: &File,
    key: Key,
    start: u64,
    limit: Option<u64>,
    mut each: impl FnMut(i64, &[u8]) -> bool,
) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let limit = limit.unwrap_or(u64::MAX).min(size);
    let mut at = start;
    let mut chunk = Vec::new();
    while at + HEADER as u64 <= limit {
        // Read a megabyte at a time; a record bigger than that on its own.
        let want = (limit - at).min(1 << 20) as usize;
        chunk.resize(want, 0);
        file.read_exact_at(&mut chunk, at)?;
        let mut used = 0;
        while used + HEADER <= chunk.len() {
            let header = record::Header::parse(chunk[used..used + HEADER].try_into().expect("16"));
            let total = HEADER as u64 + u64::from(header.len);
            if header.len == 0 || at + used as u64 + total > limit {
                return Ok(at + used as u64);
            }
            if used + total as usize > chunk.len() {
                if used == 0 {
                    // One record bigger than the chunk.
                    let mut whole = vec![0; total as usize];
                    file.read_exact_at(&mut whole, at)?;
                    if !header.matches(key, &whole[HEADER..]) {
                        return Ok(at);
                    }
                    if !each(header.id, &whole) {
                        return Ok(at + total);
                    }
                    used = total as usize;
                }
                break;
            }
            let bytes = &chunk[used..used + total as usize];
            if !header.matches(key, &bytes[HEADER..]) {
                return Ok(at + used as u64);
            }
            used += total as usize;
            if !each(header.id, bytes) {
                return Ok(at + used as u64);
            }
        }
        if used == 0 {
            break;
        }
        at += used as u64;
    }
    Ok(at)
}
