//! Hostile clients against the real binary (issue #11): what a careless or hostile
//! client can do to `sokkel mail serve`, measured as a user would notice it (the
//! catcher still answers on every protocol, what it stored is still shown, its
//! memory stays bounded), and what a well-behaved client still gets meanwhile. One
//! module per part of the issue.

mod kit;

mod hostile {
    pub mod connections;
    pub mod full_store;
    pub mod mime;
    pub mod web;
}
