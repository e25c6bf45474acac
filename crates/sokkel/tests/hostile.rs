//! Hostile clients against the real binary (issue #11): each module is one part of
//! the issue, measuring what a user would notice (the server still answers, its
//! peak RSS from /proc, a well-behaved client still served).

mod common;
mod mail_support;

mod hostile {
    pub mod web;
}
