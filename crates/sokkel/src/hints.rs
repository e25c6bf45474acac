//! What servers tell the user at start.

/// Prints a line a server announces at start (where it listens, where it keeps
/// data). A reader that went away must not stop the server, so errors are ignored.
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}
