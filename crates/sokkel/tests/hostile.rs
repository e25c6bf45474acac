//! Hostile clients against the real binary (issue #11): each module sends what an
//! attacker (or a careless client) would, and checks what a user notices: the
//! catcher still answers on every protocol, and what it stored is still shown.
mod common;
mod mail_support;

mod hostile {
    pub mod mime;
}
