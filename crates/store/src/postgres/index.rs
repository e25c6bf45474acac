//! The search index on PostgreSQL: words split in Rust, as the SQLite index
//! splits them, stored as a tsvector.
//! STUB: the pg-search helper builds this.
