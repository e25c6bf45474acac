//! The SMTP server: the session core and the shell that runs it on sockets.

pub mod session;
pub mod shell;
