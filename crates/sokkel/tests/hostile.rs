//! Hostile clients against the real binary (issue #11): what a careless or hostile
//! client can do to the catcher, and what a well-behaved one still gets meanwhile.

mod common;
mod mail_support;

mod hostile {
    pub mod connections;
}
