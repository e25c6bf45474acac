//! The SMTP client: what `sokkel mail send`, `sendmail` and `compose` speak.
//!
//! - [`reply`], [`capabilities`], [`data`]: the parts that do no I/O (reading
//!   replies, reading EHLO, preparing DATA content), table-tested;
//! - [`session`]: the tokio shell that connects, upgrades to TLS, authenticates and
//!   sends, reporting which stage failed;
//! - [`tls`]: which certificates to trust.

pub mod capabilities;
pub mod data;
pub mod reply;
pub mod session;
pub mod tls;
