//! One open store per file per process.
//!
//! A process owns a store's log through a `flock` on `mail.db-log/lock`, and
//! a lock is held per open file: a second handle on the same file in the same
//! process would find the log taken by its own process and follow itself. So
//! every [`super::SqliteStore::open`] of a file goes through here: the second
//! one gets the first one's store (its log, materialiser and announcer),
//! whatever options it passed (but one that must own the log fails if the
//! first one follows); the file is closed when the last handle of all drops.
//!
//! ```text
//! open(a/mail.db) ─▶ registry: none ─▶ Opening ─▶ open it ─▶ Open(1, weak)
//! open(./a/mail.db) ─▶ registry: Open(1) ─▶ upgrade ─▶ the same store
//! last handle drops ─▶ store closes (log let go) ─▶ Registration drops ─▶ entry gone
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use super::Inner;
use crate::StoreError;

/// A file's entry.
enum Slot {
    /// A thread is opening it: others wait for it.
    Opening,
    /// Open, with the number of its [`Registration`].
    Open(u64, Weak<Inner>),
}

#[derive(Default)]
struct Registry {
    stores: HashMap<PathBuf, Slot>,
    /// The number of the next [`Registration`].
    next: u64,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
/// Signalled when an entry goes from [`Slot::Opening`] or is removed.
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Option<Registry>> {
    // Every change under the lock is one map operation: a panic cannot leave
    // it half done.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A store's place in the registry; dropped last of its fields, once its
/// log is let go, so that the next open of the file can take the log.
#[derive(Debug)]
pub(super) struct Registration {
    key: PathBuf,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = lock();
        let stores = &mut registry.get_or_insert_with(Registry::default).stores;
        if matches!(stores.get(&self.key), Some(Slot::Open(number, _)) if *number == self.number) {
            stores.remove(&self.key);
        }
        drop(registry);
        CHANGED.notify_all();
    }
}

/// The key of the file at `path`: its canonical path, or (not there yet)
/// its directory's canonical path and its name.
pub(super) fn key(path: &Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(parent), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    }
}

/// The store open on the file `key`, or else the one `open` opens (given
/// its registration): one per file in this process. A store of the file that
/// is closing is waited for, so that its log is free again.
pub(super) fn open_once(
    key: PathBuf,
    open: impl FnOnce(Registration) -> Result<Arc<Inner>, StoreError>,
) -> Result<Arc<Inner>, StoreError> {
    let mut registry = lock();
    let number = loop {
        let state = registry.get_or_insert_with(Registry::default);
        match state.stores.get(&key) {
            None => {
                let number = state.next;
                state.next += 1;
                state.stores.insert(key.clone(), Slot::Opening);
                break number;
            }
            Some(Slot::Open(_, weak)) => {
                if let Some(inner) = weak.upgrade() {
                    return Ok(inner);
                }
            }
            Some(Slot::Opening) => {}
        }
        registry = CHANGED
            .wait(registry)
            .unwrap_or_else(PoisonError::into_inner);
    };
    drop(registry);
    // Until it is open, the slot says `Opening`; if `open` fails or panics,
    // the slot goes, so that the next open of the file tries again.
    let mut opening = Opening { key, done: false };
    let opened = open(Registration {
        key: opening.key.clone(),
        number,
    })?;
    let mut registry = lock();
    let stores = &mut registry.get_or_insert_with(Registry::default).stores;
    stores.insert(
        opening.key.clone(),
        Slot::Open(number, Arc::downgrade(&opened)),
    );
    opening.done = true;
    drop(registry);
    CHANGED.notify_all();
    Ok(opened)
}

/// A file's `Opening` slot while [`open_once`] opens it: removed when it
/// drops unless the store opened.
struct Opening {
    key: PathBuf,
    done: bool,
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut registry = lock();
        let stores = &mut registry.get_or_insert_with(Registry::default).stores;
        if matches!(stores.get(&self.key), Some(Slot::Opening)) {
            stores.remove(&self.key);
        }
        drop(registry);
        CHANGED.notify_all();
    }
}
