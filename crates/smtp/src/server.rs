//! The SMTP server: the session core and the shell that runs it on sockets.
//!
//! A command line goes [`request::parse`] → the [`session`]'s handler → a
//! [`replies`] entry; the [`shell`] moves the bytes.

pub mod replies;
pub mod request;
pub mod session;
pub mod shell;
