//! Hostile clients against the real binary (issue #11): what a hostile or careless
//! client can do to `sokkel mail serve`, measured as a user would notice it. One
//! module per part of the issue.

mod common;
mod mail_support;

mod hostile {
    pub mod full_store;
}
