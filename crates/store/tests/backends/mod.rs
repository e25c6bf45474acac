//! The backends a test case runs on, for the suites that run every case on
//! each (`conformance.rs`, `retention.rs`): a case is a function that takes
//! an opener, and every call of the opener opens the same store (a fresh one
//! per case), so a case can drop its handle and open the store again, or
//! hold two handles at once (two nodes, on PostgreSQL).
//!
//! ```text
//! cases!(sqlite: a, b);             // one #[test] per case on SQLite
//! cases!(interop postgres: a, b);   // and ignored (interop) on PostgreSQL
//! ```
#![allow(dead_code)]

use sokkel_store::{Store, StoreOptions};

#[path = "../pg/mod.rs"]
pub mod pg;

/// Opens the case's store; every call opens the same one.
pub type Open<'a> = &'a dyn Fn() -> Store;

/// Runs `case` on a fresh SQLite store in a temporary directory.
pub fn sqlite(case: fn(Open<'_>)) {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("mail.db");
    case(&|| Store::open(&path, StoreOptions::default()).unwrap());
}

/// Runs `case` on a fresh database of this test binary's throwaway
/// PostgreSQL cluster (`pg/mod.rs`).
pub fn postgres(case: fn(Open<'_>)) {
    let location: sokkel_store::Location = pg::fresh_database().parse().unwrap();
    case(&|| Store::open_at(&location, StoreOptions::default()).unwrap());
}

/// One `#[test]` per case for a backend's opener (`sqlite` or `postgres`,
/// in scope where this is invoked).
macro_rules! cases {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    super::$backend(super::$case);
                }
            )*
        }
    };
    (interop $backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                #[ignore = "interop: needs PostgreSQL; .ci/run installs it and runs cargo test -- --ignored"]
                fn $case() {
                    super::$backend(super::$case);
                }
            )*
        }
    };
}
pub(crate) use cases;
