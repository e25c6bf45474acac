//! The retention policy on PostgreSQL: one node at a time prunes (advisory
//! lock [`super::locks::RETENTION`]).
//! STUB: the pg-folders helper builds this.

use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use super::PgStore;
use crate::StoreError;
use crate::retention::{PruneReport, Retention};

impl PgStore {
    pub(crate) fn prune(
        &self,
        _policy: &Retention,
        _now: SystemTime,
        _stop: &AtomicBool,
    ) -> Result<PruneReport, StoreError> {
        Err(StoreError::unavailable("not built yet"))
    }
}
