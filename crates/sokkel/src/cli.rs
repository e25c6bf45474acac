//! The command line, as clap parses it. Every flag can also be set by an environment
//! variable `SOKKEL_*`, named in `--help`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sokkel_echo::Framing;
use sokkel_net::{HostPort, ResolveOverride};

use crate::units::{parse_duration, parse_size};

/// Network tools from the course, grown up: an echo server, client and load generator,
/// and a local mail catcher that keeps every message it is sent.
#[derive(Debug, Parser)]
#[command(name = "sokkel", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  sokkel echo serve\n  sokkel echo client 127.0.0.1:10000\n  sokkel echo bench 127.0.0.1:10000 --conns 50 --duration 10s\n\nLogs go to stderr; set RUST_LOG=debug for more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo over TCP and UDP: a server, an interactive client and a load generator.
    #[command(subcommand)]
    Echo(EchoCommand),
    /// Mail: a local catcher that keeps every message sent to it, and commands to read it.
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Run the mail catcher: accept every message over SMTP, relay none, keep them all.
    #[command(
        after_help = "Examples:\n  sokkel mail serve                          SMTP on 127.0.0.1:1025, mail kept in the data directory\n  sokkel mail serve --ephemeral              a throwaway store, removed at exit\n  sokkel mail serve --smtp [::1]:2525 --db ./mail.db\n\nThen send to it, e.g. from Python:\n  smtplib.SMTP('localhost', 1025).sendmail('a@example.com', 'b@example.com', 'Subject: hi\\r\\n\\r\\nhello')\n\nA message gets its 250 only once it is committed and synced to disk."
    )]
    Serve(MailServeArgs),
    /// List caught messages, newest first.
    #[command(after_help = "Examples:\n  sokkel mail list\n  sokkel mail list --limit 5 --json")]
    List(ListArgs),
    /// Show one message: headers and text, or its raw bytes, HTML or envelope.
    #[command(
        after_help = "Examples:\n  sokkel mail show latest\n  sokkel mail show 42 --raw > message.eml\n  sokkel mail show latest --envelope"
    )]
    Show(ShowArgs),
    /// Delete messages by id, or all of them.
    #[command(after_help = "Examples:\n  sokkel mail delete 41 42\n  sokkel mail delete --all")]
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The mail store (default: sokkel/mail.db in the platform data directory).
    #[arg(long, value_name = "PATH", env = "SOKKEL_DB")]
    pub db: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct MailServeArgs {
    /// Address for SMTP (repeatable): host:port, [::1]:port, [::]:port.
    #[arg(
        long = "smtp",
        value_name = "ADDR",
        default_value = "127.0.0.1:1025",
        env = "SOKKEL_SMTP_LISTEN",
        value_delimiter = ','
    )]
    pub smtp: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Keep mail in a temporary store that is removed at exit.
    #[arg(long, env = "SOKKEL_EPHEMERAL", conflicts_with = "db")]
    pub ephemeral: bool,
    /// The name the server gives in its greeting (default: this machine's host name).
    #[arg(long, value_name = "NAME", env = "SOKKEL_HOSTNAME")]
    pub hostname: Option<String>,
    /// The largest message accepted.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size, env = "SOKKEL_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,
    /// Recipients per message (RFC 5321 asks for at least 100).
    #[arg(long, value_name = "N", default_value_t = 1000, env = "SOKKEL_MAX_RECIPIENTS", value_parser = clap::value_parser!(u32).range(100..))]
    pub max_recipients: u32,
    /// The longest command line, CRLF included (RFC 5321 asks for at least 512).
    #[arg(long, value_name = "BYTES", default_value_t = 2048, env = "SOKKEL_MAX_LINE", value_parser = clap::value_parser!(u32).range(512..=1_048_576))]
    pub max_line: u32,
    /// SMTP sessions at once; more are told 421 and closed.
    #[arg(long, value_name = "N", default_value_t = 1000, env = "SOKKEL_SMTP_MAX_CONNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Protocol errors in one session before it is closed with 421.
    #[arg(long, value_name = "N", default_value_t = 20, env = "SOKKEL_MAX_ERRORS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_errors: u32,
    /// How long a client may take to send its next command (RFC 5321: 5 minutes).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, env = "SOKKEL_COMMAND_TIMEOUT")]
    pub command_timeout: Duration,
    /// How long a client may pause inside a message (RFC 5321: 3 minutes).
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_duration, env = "SOKKEL_DATA_TIMEOUT")]
    pub data_timeout: Duration,
    /// On Ctrl-C or SIGTERM, how long a client in the middle of a message may take to finish it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SOKKEL_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Messages with bare LF line endings: accept (store, and flag them) or reject (550 5.5.2).
    #[arg(long, value_name = "POLICY", default_value = "accept", value_parser = ["accept", "reject"], env = "SOKKEL_BARE_LF")]
    pub bare_lf: String,
    /// Refuse new mail with 451 once the store reaches this size.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, env = "SOKKEL_MAX_STORE_SIZE")]
    pub max_store_size: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// How many messages to list.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The message id, or `latest`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the exact bytes received.
    #[arg(long, group = "part")]
    pub raw: bool,
    /// Print the HTML part.
    #[arg(long, group = "part")]
    pub html: bool,
    /// Print the SMTP envelope.
    #[arg(long, group = "part")]
    pub envelope: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Message ids.
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<String>,
    /// Delete every message.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Run an echo server that prints who connected and what they sent.
    #[command(
        after_help = "Examples:\n  sokkel echo serve                                   127.0.0.1:10000, TCP\n  sokkel echo serve --listen [::]:10000 --udp         all addresses, IPv4 and IPv6, TCP and UDP\n  sokkel echo serve --framing ascii-length            the course's 4-digit length header\n  sokkel echo serve --quiet --listen 127.0.0.1:7      no line per message\n\nOutput (stdout), one line per event:\n  tcp 127.0.0.1:50312 connected to 127.0.0.1:10000\n  tcp 127.0.0.1:50312 12 bytes: hello world\\n\n  tcp 127.0.0.1:50312 left after 3.20 s, sent 12 bytes in 1 message"
    )]
    Serve(ServeArgs),
    /// Talk to an echo server: type a line, see its echo and the round-trip time.
    #[command(
        after_help = "Examples:\n  sokkel echo client 127.0.0.1:10000\n  printf 'one\\ntwo\\n' | sokkel echo client localhost:10000     prints each reply on its own line\n  sokkel echo client --udp [::1]:10000\n  sokkel echo client --framing ascii-length 127.0.0.1:10000\n\nOn a terminal: line editing and history; Ctrl-D closes the sending side, waits for\nanything still coming and exits."
    )]
    Client(ClientArgs),
    /// Load-test any echo server: many connections, every echo verified, latency percentiles.
    #[command(
        after_help = "Examples:\n  sokkel echo bench 127.0.0.1:10000\n  sokkel echo bench 127.0.0.1:10000 --conns 50 --size 4KiB --duration 30s\n  sokkel echo bench 127.0.0.1:10000 --requests 100000 --json"
    )]
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (repeatable): host:port, 0.0.0.0:port, [::1]:port, [::]:port (dual stack).
    #[arg(
        long = "listen",
        value_name = "ADDR",
        default_value = "127.0.0.1:10000",
        env = "SOKKEL_ECHO_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,
    /// Serve UDP on the same addresses as well.
    #[arg(long, env = "SOKKEL_ECHO_UDP", conflicts_with = "udp_only")]
    pub udp: bool,
    /// Serve UDP only.
    #[arg(long, env = "SOKKEL_ECHO_UDP_ONLY")]
    pub udp_only: bool,
    #[command(flatten)]
    pub framing: FramingArgs<RawDefault>,
    /// Connections served at once; more are closed right after accept.
    #[arg(long, value_name = "N", default_value_t = 10_000, env = "SOKKEL_ECHO_MAX_CONNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Close a connection after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration, env = "SOKKEL_ECHO_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,
    /// On Ctrl-C or SIGTERM, how long open connections may take to finish their message.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, env = "SOKKEL_ECHO_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Do not print a line per message (connects and leaves are still printed).
    #[arg(long, short, env = "SOKKEL_ECHO_QUIET")]
    pub quiet: bool,
    /// Worker threads (default: one per CPU core).
    #[arg(long, value_name = "N", env = "SOKKEL_ECHO_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// The framing flags, with a default that differs between server (raw) and client (line).
#[derive(Debug, Args)]
pub struct FramingArgs<D: FramingDefault> {
    /// How messages are delimited: raw, line, length (4-byte big-endian header),
    /// ascii-length (4 ASCII digits, as in the course) or fixed:N.
    #[arg(long, value_name = "MODE", default_value = D::DEFAULT, value_parser = parse_framing, env = "SOKKEL_ECHO_FRAMING")]
    pub framing: Framing,
    /// The largest frame accepted, header included.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size, env = "SOKKEL_ECHO_MAX_FRAME")]
    pub max_frame: usize,
    #[arg(skip)]
    _default: std::marker::PhantomData<D>,
}

pub trait FramingDefault: Send + Sync + Clone + std::fmt::Debug + 'static {
    const DEFAULT: &'static str;
}
#[derive(Debug, Clone)]
pub struct RawDefault;
impl FramingDefault for RawDefault {
    const DEFAULT: &'static str = "raw";
}
#[derive(Debug, Clone)]
pub struct LineDefault;
impl FramingDefault for LineDefault {
    const DEFAULT: &'static str = "line";
}

#[derive(Debug, Args)]
pub struct Target {
    /// The echo server: host:port or [v6]:port; a host name is tried at every address it has.
    #[arg(value_name = "ADDR", value_parser = parse_host_port)]
    pub addr: HostPort,
    /// Use UDP instead of TCP.
    #[arg(long, env = "SOKKEL_ECHO_UDP")]
    pub udp: bool,
    /// How long to wait for a connection or a reply.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, env = "SOKKEL_ECHO_TIMEOUT")]
    pub timeout: Duration,
    /// Use these addresses for HOST:PORT instead of asking DNS, in this order (as curl's --resolve).
    #[arg(long, value_name = "HOST:PORT:ADDR[,ADDR]", value_parser = parse_resolve)]
    pub resolve: Vec<ResolveOverride>,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub framing: FramingArgs<LineDefault>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Connections sending at once.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 50, env = "SOKKEL_BENCH_CONNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Payload bytes per message.
    #[arg(long, short = 's', value_name = "SIZE", default_value = "64", value_parser = parse_size, env = "SOKKEL_BENCH_SIZE")]
    pub size: usize,
    /// How long to run.
    #[arg(long, short = 'd', value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SOKKEL_BENCH_DURATION", conflicts_with = "requests")]
    pub duration: Duration,
    /// Stop after this many round trips in all, instead of after --duration.
    #[arg(long, short = 'n', value_name = "N", env = "SOKKEL_BENCH_REQUESTS")]
    pub requests: Option<u64>,
    #[command(flatten)]
    pub framing: FramingArgs<RawDefault>,
    /// Print the report as JSON.
    #[arg(long, env = "SOKKEL_BENCH_JSON")]
    pub json: bool,
    /// Threads generating load.
    #[arg(long, value_name = "N", default_value_t = 1, env = "SOKKEL_BENCH_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

fn parse_framing(s: &str) -> Result<Framing, String> {
    s.parse()
}

fn parse_host_port(s: &str) -> Result<HostPort, String> {
    HostPort::parse(s, None).map_err(|e| e.to_string())
}

fn parse_resolve(s: &str) -> Result<ResolveOverride, String> {
    s.parse().map_err(|e: sokkel_net::NetError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
