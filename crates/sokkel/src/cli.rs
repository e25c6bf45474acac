//! The command line, as clap parses it. Every flag can also be set by an environment
//! variable `SOKKEL_*`, named in `--help`.

use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use sokkel_echo::Framing;
use sokkel_net::{HostPort, ResolveOverride};
use sokkel_store::{MaxAge, SearchQuery};

use crate::listen::{ListenAddr, parse_listen};
use crate::units::{parse_duration, parse_size, parse_size_at_least, parse_timeout};

/// Network tools from the course, grown up: an echo server, client and load generator,
/// and a local mail catcher that keeps every message it is sent.
#[derive(Debug, Parser)]
#[command(name = "sokkel", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  sokkel mail serve                       catch mail on 127.0.0.1:1025\n  sokkel mail list\n  sokkel mail show latest\n  sokkel mail send --to you@example.com --subject hi --body hello\n  sokkel echo serve\n  sokkel echo client 127.0.0.1:10000\n  sokkel echo bench 127.0.0.1:10000 --conns 50 --duration 10s\n\nLogs go to stderr; set RUST_LOG=debug for more."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read settings from this TOML file: a table per command ([mail.serve]), keys named as the long flags; the command line and SOKKEL_* variables win over it (README, "Configuration file").
    #[arg(long, global = true, value_name = "FILE", env = "SOKKEL_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Print the settings the command would run with, and where each comes from, as a file --config takes (secrets masked); then exit.
    #[arg(long, global = true)]
    pub print_config: bool,
}

// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo over TCP and UDP: a server, an interactive client and a load generator.
    #[command(subcommand)]
    Echo(EchoCommand),
    /// Mail: a local catcher that keeps every message sent to it, and commands to read it.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Read a message on stdin and send it, as sendmail does (server: SOKKEL_SMTP_SERVER).
    #[command(
        after_help = "Examples:\n  printf 'To: you@example.com\\nSubject: hi\\n\\nhello\\n' | sokkel sendmail -t\n  sokkel sendmail -i -f me@example.com you@example.com < message.eml\n\nPoint PHP at it with sendmail_path = \"/path/to/sokkel sendmail -t -i\", or\nlink it as `sendmail`: called by that name, sokkel acts as this command.\n\nExit codes are those of `sokkel mail send`."
    )]
    Sendmail(SendmailArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(
        after_help = "Examples:\n  sokkel completions bash > ~/.local/share/bash-completion/completions/sokkel\n  sokkel completions zsh > ~/.zfunc/_sokkel        (with fpath+=~/.zfunc in ~/.zshrc)\n  sokkel completions fish > ~/.config/fish/completions/sokkel.fish"
    )]
    Completions(crate::install::CompletionsArgs),
    /// Print the man page of sokkel or one of its commands (roff), or write them all.
    #[command(
        after_help = "Examples:\n  sokkel man | man -l -\n  sokkel man mail serve | man -l -\n  sokkel man --dir ~/.local/share/man/man1     then: man sokkel-mail-serve"
    )]
    Man(crate::install::ManArgs),
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Run the mail catcher: accept every message over SMTP, relay none, keep them unless --max/--max-age.
    #[command(
        after_help = SERVE_HELP
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
    /// Star messages (IMAP's \Flagged), or unstar them with --unflag.
    #[command(
        after_help = "Examples:\n  sokkel mail flag 41 42\n  sokkel mail flag latest --unflag"
    )]
    Flag(FlagArgs),
    /// Mark messages read.
    #[command(after_help = "Examples:\n  sokkel mail read 41 42\n  sokkel mail read latest")]
    Read(MarkArgs),
    /// Mark messages unread.
    #[command(after_help = "Examples:\n  sokkel mail unread 41 42")]
    Unread(MarkArgs),
    /// Add or remove tags of messages, and print their tags.
    #[command(
        after_help = "Examples:\n  sokkel mail tag 41 42 --add invoices --add 'to do'\n  sokkel mail tag latest --remove 'to do'\n  sokkel mail tag 41                         print its tags\n\nTag names: letters and digits of any script, spaces and - _ . @; at most 100\ncharacters; compared without regard to case."
    )]
    Tag(TagArgs),
    /// Send a message over SMTP, like swaks: TLS, AUTH, attachments, a transcript with -v.
    #[command(after_help = SEND_HELP)]
    Send(SendArgs),
    /// Send a caught message, byte for byte, to real recipients through the relay (--relay-config).
    #[command(
        after_help = "Examples:\n  sokkel mail release latest --to me@example.com --relay-config relay.toml\n  SOKKEL_RELAY_CONFIG=relay.toml sokkel mail release 42 --to a@x.test,b@x.test\n\nThe attempt is recorded with the message: `sokkel mail show ID` lists it.\nWorks while `sokkel mail serve` runs on the same store."
    )]
    Release(ReleaseArgs),
    /// Write a message interactively (or from piped answers) and send it.
    #[command(
        after_help = "Asks From (remembering the last one), To, Cc, Subject, the body (end it with\na line holding a single '.' or with Ctrl-D) and attachments, shows a summary\nand asks whether to send, edit or cancel. Takes the same connection options as `mail send`.\n\nExamples:\n  sokkel mail compose\n  sokkel mail compose --server smtp.example.com:587 --tls starttls --user me"
    )]
    Compose(ComposeArgs),
    /// Add the messages of mbox files, Maildir folders and .eml files to the store (as Mailpit's ingest).
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Write the messages a search selects, oldest first, as an mbox file, a Maildir or .eml files.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
}

const IMPORT_HELP: &str = "Examples:
  sokkel mail import ~/old.mbox              an mbox file (mboxrd or mboxo)
  sokkel mail import ~/Maildir               a Maildir and its Maildir++ folders
  sokkel mail import saved/*.eml saved-dir/  messages, or directories of them

A .eml file is one message, even one that starts with From or is empty.
mbox is read as mboxrd: one > goes from each line starting with >From, so in
an mboxo file (only From quoted) a body line >From comes in as From.
A Maildir message's S and F flags become read and starred. The envelope comes
from the mbox From_ line if it names an address (not Thunderbird's -), else
from Return-Path, Sender or From, and from Delivered-To or X-Original-To,
else To, Cc and Bcc; the received time from the From_ line, a Maildir file's
time, or the Date header.

While `sokkel mail serve` serves the same SQLite store, import hands each
message to it over SMTP (BDAT: byte for byte; received now), at the address
it recorded in the store's log directory or at --smtp, once its EHLO reply
names the store's token: no other server gets any message. A file that is not
mail is skipped with a note, and the exit code is then 1.";

const EXPORT_HELP: &str = "Examples:
  sokkel mail export --format mbox all.mbox
  sokkel mail export --format mbox - | gzip > all.mbox.gz
  sokkel mail export --format maildir --query 'from:alice is:unread' ~/Maildir
  sokkel mail export --format eml --query 'after:2026-11-01' saved/

mbox is written as mboxrd: lines starting with From or >From get one more >,
which import takes away again. An mbox round trip keeps each message but adds
a final line break to one without it. Maildir and .eml keep each message
byte for byte: Maildir names carry the read (S) and starred (F) flags, .eml
files are named ID.eml. Files are never overwritten without --force. Works
while `sokkel mail serve` runs.";

const SERVE_HELP: &str = "Examples:
  sokkel mail serve              SMTP on 127.0.0.1:1025, the web page and API
                                 on http://127.0.0.1:8025/
  sokkel mail serve --ephemeral  a throwaway store, removed at exit
  sokkel mail serve --smtp [::1]:2525 --db ./mail.db
  sokkel mail serve --http 127.0.0.1:8026    the web page on another port
  sokkel mail serve --no-http                no web page and no API
  sokkel mail serve --webroot /mail/ --http-allow-host mail.example.com
                                 behind a reverse proxy: see the README
  sokkel mail serve --http :8025 --ui-auth-file users --ui-tls-self-signed
                                 the page for a team: a login, over HTTPS
  sokkel mail serve --max 500 --max-age 7d   the newest 500, none over 7 days
  sokkel mail serve --chaos recipient:451:50 --chaos-seed 1

Then send to it, e.g. from Python:
  import smtplib
  smtp = smtplib.SMTP('localhost', 1025)
  smtp.sendmail('a@example.com', 'b@example.com', 'Subject: hi\\r\\n\\r\\nhello')

A message gets its 250 only once it is committed and synced to disk.";

const SEND_HELP: &str = "Examples:
  sokkel mail send --to you@example.com --subject hi --body 'hello'
  sokkel mail send --to a@x.test,b@x.test --attach report.pdf < body.txt
  sokkel mail send --to you@example.com --html-file body.html < body.txt
  sokkel mail send --server smtp.example.com:587 --tls starttls --user me \\
      --to you@example.com -v
  sokkel mail send --data message.eml --to you@example.com
  sokkel mail send --to you@example.com --dry-run

The password comes from SOKKEL_SMTP_PASSWORD or a prompt, never from the
command line.

Exit codes:
   0  sent to every recipient
   1  another error (unreadable file, bad option value ...)
   2  usage error
   3  sent, but some recipients were refused
  20  connecting failed
  21  the greeting was refused or never came
  22  EHLO and HELO refused
  23  MAIL FROM refused, or the message is over the server's SIZE
  24  no recipient accepted
  25  DATA refused
  26  refused after the final dot
  28  AUTH failed
  29  TLS failed";

#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// The SMTP server: host[:port] or [v6]:port (default port 1025, or 465 with --tls implicit).
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        default_value = "localhost",
        env = "SOKKEL_SMTP_SERVER"
    )]
    pub server: String,
    /// none, starttls (required), starttls-if-offered, or implicit (SMTPS).
    #[arg(long, value_name = "MODE", default_value = "none", value_parser = ["none", "starttls", "starttls-if-offered", "implicit"], env = "SOKKEL_SMTP_TLS")]
    pub tls: String,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE", env = "SOKKEL_SMTP_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (for local catchers with self-signed ones).
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_SMTP_INSECURE")]
    pub insecure: bool,
    /// Log in as this user; the password comes from SOKKEL_SMTP_PASSWORD or a prompt.
    #[arg(long, value_name = "USER", env = "SOKKEL_SMTP_USER")]
    pub user: Option<String>,
    /// AUTH mechanism: plain, login, or auto (PLAIN if offered, else LOGIN).
    #[arg(long, value_name = "MECHANISM", default_value = "auto", value_parser = ["plain", "login", "auto"], env = "SOKKEL_SMTP_AUTH")]
    pub auth: String,
    /// The name to give in EHLO (default: this machine's host name).
    #[arg(long, value_name = "NAME", env = "SOKKEL_SMTP_EHLO")]
    pub ehlo: Option<String>,
    /// The longest wait for the connection, each reply and each write.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout, env = "SOKKEL_SMTP_TIMEOUT")]
    pub timeout: Duration,
    /// Print the SMTP transcript on stderr; -vv also prints the message content.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subject of `mail send` without `--subject` (or with an empty one).
pub const DEFAULT_SUBJECT: &str = "Test message from sokkel";

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipient (repeatable, or comma-separated).
    #[arg(long, value_name = "ADDR", required_unless_present = "data")]
    pub to: Vec<String>,
    /// Copy recipient (repeatable, or comma-separated).
    #[arg(long, value_name = "ADDR")]
    pub cc: Vec<String>,
    /// Blind copy recipient: gets the message, appears in no header.
    #[arg(long, value_name = "ADDR")]
    pub bcc: Vec<String>,
    /// Sender (default: you at this machine's host name). `Name <addr>` sets a display name.
    #[arg(long, value_name = "ADDR", env = "SOKKEL_SMTP_FROM")]
    pub from: Option<String>,
    /// Subject line (UTF-8 is fine).
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_SUBJECT)]
    pub subject: String,
    /// The text body (default: read from stdin when it is not a terminal).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["body_file", "data"])]
    pub body: Option<String>,
    /// Read the text body from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub body_file: Option<std::path::PathBuf>,
    /// An HTML alternative to the text body.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub html_file: Option<std::path::PathBuf>,
    /// Attach a file (repeatable); its type comes from its name.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub attach: Vec<std::path::PathBuf>,
    /// An extra header, 'Name: value' (repeatable).
    #[arg(long, value_name = "HEADER", conflicts_with = "data")]
    pub header: Vec<String>,
    /// Send this ready-made message as it is (recipients from --to/--cc/--bcc, or its headers).
    #[arg(long, value_name = "FILE")]
    pub data: Option<std::path::PathBuf>,
    /// Print the message that would be sent, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send the message this many times over one connection (for load tests).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The message id, or `latest`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Recipient (repeatable, or comma-separated): `a@example.com` or `Name <a@example.com>`.
    #[arg(long, value_name = "ADDR", required = true, value_delimiter = ',')]
    pub to: Vec<String>,
    /// The relay: a TOML file (README, "Relay and release").
    #[arg(long, value_name = "FILE", env = "SOKKEL_RELAY_CONFIG")]
    pub relay_config: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `sokkel sendmail`: the classic sendmail command line that PHP's mail(), cron and
/// git send-email call.
#[derive(Debug, Args)]
pub struct SendmailArgs {
    /// Take recipients from the To, Cc and Bcc headers (and strip Bcc).
    #[arg(short = 't')]
    pub from_headers: bool,
    /// The envelope sender.
    #[arg(short = 'f', value_name = "FROM")]
    pub from: Option<String>,
    /// A line with a single '.' does not end the message.
    #[arg(short = 'i')]
    pub ignore_dots: bool,
    /// sendmail options (-oi is -i; others are accepted and ignored).
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// The sender's full name (accepted for compatibility).
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,
    /// Body type (accepted for compatibility).
    #[arg(short = 'B', value_name = "TYPE")]
    pub body_type: Option<String>,
    /// Print the SMTP transcript on stderr.
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Recipients.
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The mail store: a SQLite file (default: sokkel/mail.db in the platform data directory), or a PostgreSQL database, postgres://USER@HOST:PORT/DATABASE, shared by several nodes; its password comes from PGPASSWORD or ~/.pgpass, never from here.
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "SOKKEL_DB",
        hide_env_values = true
    )]
    pub db: Option<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct MailServeArgs {
    /// Address for SMTP (repeatable): host:port, [::1]:port, or :port for every address (IPv4 and IPv6).
    #[arg(
        long = "smtp",
        value_name = "ADDR",
        default_value = "127.0.0.1:1025",
        value_parser = |s: &str| parse_listen(s, 1025),
        env = "SOKKEL_SMTP_LISTEN",
        value_delimiter = ','
    )]
    pub smtp: Vec<ListenAddr>,
    /// Address for the web page and API (repeatable): host:port, [::1]:port, or :port for every address.
    #[arg(
        long = "http",
        value_name = "ADDR",
        default_value = "127.0.0.1:8025",
        value_parser = |s: &str| parse_listen(s, 8025),
        env = "SOKKEL_HTTP_LISTEN",
        value_delimiter = ','
    )]
    pub http: Vec<ListenAddr>,
    /// Serve no web page and no API, only SMTP.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_NO_HTTP")]
    pub no_http: bool,
    /// Serve the web page, the API and the WebSocket under this path, for a reverse proxy that forwards it unchanged: mail, /mail and /mail/ all mean /mail/.
    #[arg(long, value_name = "PATH", default_value = "/", value_parser = sokkel_web::WebRoot::parse, env = "SOKKEL_WEBROOT")]
    pub webroot: sokkel_web::WebRoot,
    /// Also answer web requests for this host name (any port) while listening on loopback only, such as the public name a reverse proxy passes on (repeatable).
    #[arg(long = "http-allow-host", value_name = "NAME", value_parser = sokkel_web::parse_allowed_host, env = "SOKKEL_HTTP_ALLOW_HOST", value_delimiter = ',')]
    pub http_allow_host: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Keep mail in a temporary store that is removed at exit.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_EPHEMERAL", conflicts_with = "db")]
    pub ephemeral: bool,
    /// The name the server gives in its greeting (default: this machine's host name).
    #[arg(long, value_name = "NAME", env = "SOKKEL_HOSTNAME")]
    pub hostname: Option<String>,
    /// The largest message accepted.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = |s: &str| parse_size_at_least(s, 1), env = "SOKKEL_MAX_MESSAGE_SIZE")]
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
    /// The share of each connection cap (SMTP, POP3, HTTP) one client address may hold, in percent; 127.0.0.1 and ::1 are exempt.
    #[arg(long, value_name = "PERCENT", default_value_t = sokkel_net::server::DEFAULT_ADDRESS_SHARE_PERCENT, env = "SOKKEL_PER_ADDRESS_SHARE", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub per_address_share: u32,
    /// Behind a TCP load balancer (HAProxy's send-proxy-v2): every SMTP, POP3 and IMAP connection must start with a PROXY protocol header (v2, or v1), whose source address is the client's; a connection without one within 5 s is closed.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,
    /// Bytes all SMTP sessions together may hold for messages in flight; over it, DATA gets 452 4.3.1.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = |s: &str| parse_size_at_least(s, 1 << 20), env = "SOKKEL_MAX_INFLIGHT_MEMORY")]
    pub max_inflight_memory: usize,
    /// Protocol errors in one session before it is closed with 421.
    #[arg(long, value_name = "N", default_value_t = 20, env = "SOKKEL_MAX_ERRORS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_errors: u32,
    /// How long a client may take to send a whole command line, however slowly the bytes come (RFC 5321: 5 minutes).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout, env = "SOKKEL_COMMAND_TIMEOUT")]
    pub command_timeout: Duration,
    /// How long a client may pause inside a message (RFC 5321: 3 minutes).
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_timeout, env = "SOKKEL_DATA_TIMEOUT")]
    pub data_timeout: Duration,
    /// How long a whole message (DATA, or BDAT chunks up to LAST) may take to arrive.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_timeout, env = "SOKKEL_DATA_TOTAL_TIMEOUT")]
    pub data_total_timeout: Duration,
    /// How long an HTTP client may take to send a request's whole header block (also the keep-alive idle limit).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout, env = "SOKKEL_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Duration,
    /// How long an HTTP client may take to send a request's whole body.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout, env = "SOKKEL_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Duration,
    /// On Ctrl-C or SIGTERM, how long a client in the middle of a message may take to finish it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SOKKEL_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Messages with bare LF line endings: accept (store, and flag them) or reject (550 5.5.2).
    #[arg(long, value_name = "POLICY", default_value = "accept", value_parser = ["accept", "reject"], env = "SOKKEL_BARE_LF")]
    pub bare_lf: String,
    /// Refuse new mail with 451 once the store reaches this size.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| parse_size_at_least(s, 64 << 10), env = "SOKKEL_MAX_STORE_SIZE")]
    pub max_store_size: Option<usize>,
    /// Keep only the newest N messages; older ones are deleted within seconds (0: no limit, the default).
    #[arg(long = "max", value_name = "N", value_parser = parse_max_messages, env = "SOKKEL_MAX")]
    pub max: Option<u64>,
    /// Delete messages received longer ago than AGE: 30s, 15m, 12h or 7d (0: no limit, the default).
    #[arg(long, value_name = "AGE", env = "SOKKEL_MAX_AGE")]
    pub max_age: Option<MaxAge>,
    /// Threads for the network side (the store always writes on a thread of its own).
    #[arg(long, value_name = "N", default_value_t = 1, env = "SOKKEL_MAIL_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub web_login: WebLoginArgs,
    #[command(flatten)]
    pub chaos: ChaosArgs,
    #[command(flatten)]
    pub pop3: Pop3Args,
    #[command(flatten)]
    pub imap: ImapArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub tags: TagsArgs,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    #[command(flatten)]
    pub link_check: LinkCheckArgs,
}

/// The page's link check (`GET /api/v1/message/{ID}/link-check`), the one
/// thing that makes sokkel request URLs from mail, and only when asked.
#[derive(Debug, Args)]
#[command(next_help_heading = "Link check")]
pub struct LinkCheckArgs {
    /// How long the link check waits for one link, from its DNS look-up to its status line, in seconds (1 to 60).
    #[arg(long, value_name = "SECS", default_value_t = 5, env = "SOKKEL_LINK_CHECK_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub link_check_timeout: u64,
    /// Refuse to check links whose host resolves to a loopback, private, link-local or other reserved address (answered 451, as Mailpit does); by default they are checked, since mail caught in development often links to the developer's own machine.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_LINK_CHECK_BLOCK_PRIVATE")]
    pub link_check_block_private: bool,
}

/// Parses `--webhook-url` without repeating a refused value in the error, as
/// clap's own message would: it may hold a password or a secret path.
#[derive(Debug, Clone)]
struct WebhookUrlParser;

impl clap::builder::TypedValueParser for WebhookUrlParser {
    type Value = sokkel_web::webhook::WebhookUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refused = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '--webhook-url <URL>': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refused("the URL is not valid UTF-8".into()))?;
        text.parse().map_err(|error| refused(format!("{error}")))
    }
}

/// Posting each arriving message's summary to a URL (Mailpit's webhook).
#[derive(Debug, Args)]
#[command(next_help_heading = "Webhook")]
pub struct WebhookArgs {
    /// POST each new message's summary (JSON) to this http:// or https:// URL. Credentials (user:password@) belong in SOKKEL_WEBHOOK_URL, not on the command line.
    #[arg(
        long,
        value_name = "URL",
        env = "SOKKEL_WEBHOOK_URL",
        hide_env_values = true,
        value_parser = WebhookUrlParser
    )]
    pub webhook_url: Option<sokkel_web::webhook::WebhookUrl>,
    /// At most N webhook posts a second; messages over it are not posted (0: no limit).
    #[arg(long, value_name = "N", default_value_t = sokkel_web::webhook::DEFAULT_PER_SECOND, env = "SOKKEL_WEBHOOK_LIMIT", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub webhook_limit: u32,
}

/// How arriving messages get tags.
#[derive(Debug, Args)]
#[command(next_help_heading = "Tags")]
pub struct TagsArgs {
    /// Tag every arriving message that matches a search (repeatable): 'NAME=QUERY', e.g. 'invoices=subject:invoice'. Runs once the message is indexed, never delaying its 250; SOKKEL_TAG holds one rule.
    #[arg(long = "tag", value_name = "NAME=QUERY", value_parser = parse_tag_rule, env = "SOKKEL_TAG")]
    pub rules: Vec<sokkel_store::tags::TagRule>,
    /// Tag sources to turn off (Mailpit's flag): plus-addresses (user+tag@host), x-tags (the X-Tags header).
    #[arg(
        long,
        value_name = "SOURCES",
        value_delimiter = ',',
        env = "SOKKEL_TAGS_DISABLE"
    )]
    pub tags_disable: Vec<TagSource>,
}

/// Where arriving messages' tags come from, for `--tags-disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TagSource {
    /// `user+tag@host` among the recipients, To, Cc, Bcc and From.
    #[value(alias = "plus-addressing")]
    PlusAddresses,
    /// The `X-Tags: a, b` header.
    #[value(alias = "xtags")]
    XTags,
}

fn parse_tag_rule(s: &str) -> Result<sokkel_store::tags::TagRule, String> {
    sokkel_store::tags::TagRule::parse(s).map_err(|error| error.to_string())
}

/// Relaying caught mail to a real server: release on request, or on arrival.
#[derive(Debug, Args)]
#[command(next_help_heading = "Relay")]
pub struct RelayArgs {
    /// The relay for releases and auto-relay: a TOML file (README, "Relay and release"). Without it, nothing is ever relayed.
    #[arg(long, value_name = "FILE", env = "SOKKEL_RELAY_CONFIG")]
    pub relay_config: Option<std::path::PathBuf>,
    /// Relay every arriving message to its envelope recipients that the relay config allows.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_RELAY_ALL", conflicts_with = "relay_matching")]
    pub relay_all: bool,
    /// Relay arriving messages that match this search (the web page's search language), e.g. 'to:@example.com subject:invoice'.
    #[arg(long, value_name = "QUERY", env = "SOKKEL_RELAY_MATCHING")]
    pub relay_matching: Option<String>,
}

/// POP3, so mail readers can fetch what the catcher caught.
#[derive(Debug, Args)]
#[command(next_help_heading = "POP3")]
pub struct Pop3Args {
    /// Address for POP3 (repeatable); logins use --auth-file, or any login without one.
    #[arg(
        long = "pop3",
        value_name = "ADDR",
        default_value = "127.0.0.1:1110",
        value_parser = |s: &str| parse_listen(s, 1110),
        env = "SOKKEL_POP3_LISTEN",
        value_delimiter = ','
    )]
    pub pop3: Vec<ListenAddr>,
    /// Address for POP3S, TLS from the first byte (repeatable); needs a certificate.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SOKKEL_POP3S_LISTEN",
        value_parser = |s: &str| parse_listen(s, 1995),
        value_delimiter = ','
    )]
    pub pop3s: Vec<ListenAddr>,
    /// Serve no POP3 at all.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_NO_POP3", conflicts_with = "pop3s")]
    pub no_pop3: bool,
    /// Show each POP3 login, and each IMAP login in its INBOX, only the mail sent to it (a login without @ sees its name at any domain).
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_PER_RECIPIENT")]
    pub per_recipient: bool,
    /// The older spelling of --per-recipient, from when it was POP3's alone; kept so
    /// that scripts and environments that set it go on working.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_POP3_PER_RECIPIENT", hide = true)]
    pub pop3_per_recipient: bool,
    /// POP3 sessions at once; more are told -ERR [SYS/TEMP] and closed.
    #[arg(long, value_name = "N", default_value_t = 100, env = "SOKKEL_POP3_MAX_SESSIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub pop3_max_sessions: u32,
    /// How long a POP3 client may take to send a whole command line before it is logged out (RFC 1939: 10 minutes or more).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_timeout, env = "SOKKEL_POP3_TIMEOUT")]
    pub pop3_timeout: Duration,
}

impl Pop3Args {
    /// Whether each login sees only its own mail (`--per-recipient`, or its
    /// older spelling).
    pub fn per_recipient(&self) -> bool {
        self.per_recipient || self.pop3_per_recipient
    }
}

/// IMAP, so mail clients can read, flag, tag and delete what the catcher caught.
#[derive(Debug, Args)]
#[command(next_help_heading = "IMAP")]
pub struct ImapArgs {
    /// Address for IMAP (repeatable); logins as for POP3.
    #[arg(
        long = "imap",
        value_name = "ADDR",
        default_value = "127.0.0.1:1143",
        value_parser = |s: &str| parse_listen(s, 1143),
        env = "SOKKEL_IMAP_LISTEN",
        value_delimiter = ','
    )]
    pub imap: Vec<ListenAddr>,
    /// Address for IMAPS, TLS from the first byte (repeatable, usually port 1993); needs a certificate.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SOKKEL_IMAPS_LISTEN",
        value_parser = |s: &str| parse_listen(s, 1993),
        value_delimiter = ','
    )]
    pub imaps: Vec<ListenAddr>,
    /// Serve no IMAP at all.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_NO_IMAP", conflicts_with = "imaps")]
    pub no_imap: bool,
    /// IMAP sessions at once; more are told * BYE and closed.
    #[arg(long, value_name = "N", default_value_t = 100, env = "SOKKEL_IMAP_MAX_SESSIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub imap_max_sessions: u32,
    /// How long an IMAP client may stay silent (between commands, or in IDLE, which clients renew every 29 minutes) before it is logged out. RFC 3501 asks for at least 30 minutes; shorter is for tests.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_timeout, env = "SOKKEL_IMAP_TIMEOUT")]
    pub imap_timeout: Duration,
}

/// TLS and AUTH for the catcher's SMTP (and POP3) listeners.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS and AUTH")]
pub struct SecurityArgs {
    /// Address for SMTPS, TLS from the first byte (repeatable); needs a certificate.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SOKKEL_SMTPS_LISTEN",
        value_parser = |s: &str| parse_listen(s, 1465),
        value_delimiter = ','
    )]
    pub smtps: Vec<ListenAddr>,
    /// The certificate chain (PEM) for STARTTLS and SMTPS; with --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "SOKKEL_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "SOKKEL_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Make a self-signed certificate at start and print its fingerprint.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Refuse MAIL with 530 until the client has used STARTTLS.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_REQUIRE_TLS")]
    pub require_tls: bool,
    /// Users who may log in: lines of user:password (clear, bcrypt or argon2 hash).
    #[arg(long, value_name = "FILE", env = "SOKKEL_AUTH_FILE")]
    pub auth_file: Option<std::path::PathBuf>,
    /// Accept any user name and password (for apps that insist on logging in).
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_AUTH_ACCEPT_ANY", conflicts_with = "auth_file")]
    pub auth_accept_any: bool,
    /// Offer AUTH on connections without TLS too (passwords then cross in clear text).
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_ALLOW_INSECURE_AUTH")]
    pub allow_insecure_auth: bool,
    /// How long a client waits after wrong credentials; after a wrong web login (--ui-auth-file) no login from that address (IPv6: /64) is checked meanwhile, and it doubles with each further failure from there, up to 30 s.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, env = "SOKKEL_AUTH_FAILURE_DELAY")]
    pub auth_failure_delay: Duration,
    /// Failed logins in one session before it is closed.
    #[arg(long, value_name = "N", default_value_t = 3, env = "SOKKEL_MAX_AUTH_FAILURES", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_auth_failures: u32,
}

/// A login and HTTPS for the web page, the API and the WebSocket (`--http`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Web login and HTTPS")]
pub struct WebLoginArgs {
    /// Users who may open the web page, the API and the WebSocket (HTTP Basic): lines of user:password, as for --auth-file (clear, bcrypt or argon2 hash). /livez, /readyz and /metrics stay open.
    #[arg(
        long,
        value_name = "FILE",
        env = "SOKKEL_UI_AUTH_FILE",
        conflicts_with = "no_http"
    )]
    pub ui_auth_file: Option<std::path::PathBuf>,
    /// The certificate chain (PEM) to speak HTTPS with on --http; with --ui-tls-key.
    #[arg(
        long,
        value_name = "FILE",
        env = "SOKKEL_UI_TLS_CERT",
        requires = "ui_tls_key",
        conflicts_with = "no_http"
    )]
    pub ui_tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --ui-tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "SOKKEL_UI_TLS_KEY",
        requires = "ui_tls_cert"
    )]
    pub ui_tls_key: Option<std::path::PathBuf>,
    /// Speak HTTPS on --http with a self-signed certificate made at start (the one --tls-self-signed makes, when given too) and print its fingerprint.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_UI_TLS_SELF_SIGNED", conflicts_with_all = ["ui_tls_cert", "no_http"])]
    pub ui_tls_self_signed: bool,
}

/// SMTP faults on purpose, for testing how an application copes; off by default.
#[derive(Debug, Args)]
#[command(next_help_heading = "Chaos (SMTP faults on purpose, for tests)")]
pub struct ChaosArgs {
    /// Enable chaos: GET/PUT /api/v1/chaos change the fault triggers while the server runs (all off until set).
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_ENABLE_CHAOS")]
    pub enable_chaos: bool,
    /// A fault trigger; repeatable or comma separated; implies --enable-chaos. sender|recipient|auth:CODE:PERCENT refuses MAIL, RCPT or AUTH with CODE (400-599); disconnect:connect|mail|rcpt|data|content:PERCENT hangs up without a reply; slowlink:BYTES_PER_SECOND slows what the server writes and reads to that rate.
    #[arg(
        long = "chaos",
        alias = "chaos-triggers",
        value_name = "TRIGGER",
        env = "SOKKEL_CHAOS"
    )]
    pub chaos: Vec<String>,
    /// Seed for the chaos draws: the same seed gives the same faults to a client doing the same things (default: random, logged at start).
    #[arg(long, value_name = "N", env = "SOKKEL_CHAOS_SEED")]
    pub chaos_seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// How many messages to list.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only messages with this tag (any case).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// mbox files, Maildir folders, .eml files, or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<std::path::PathBuf>,
    /// The SMTP address of the `mail serve` that serves the store, for an import while it runs (default: the address it recorded); it must name the store's token in its EHLO reply.
    #[arg(long, value_name = "HOST:PORT", env = "SOKKEL_IMPORT_SMTP")]
    pub smtp: Option<String>,
    /// Skip messages larger than this.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size, env = "SOKKEL_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// mbox (one file; - for stdout), maildir (a directory with cur/, new/ and tmp/), or eml (a directory of ID.eml files).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only the messages this search finds, as in the web page's search box (dates in UTC); default: all.
    #[arg(long, value_name = "QUERY", value_parser = parse_query, allow_hyphen_values = true)]
    pub query: Option<SearchQuery>,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
    /// The mbox file, or the directory to write (made if missing).
    #[arg(value_name = "DEST")]
    pub dest: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Mbox,
    Maildir,
    Eml,
}

fn parse_query(text: &str) -> Result<SearchQuery, String> {
    SearchQuery::parse(text).map_err(|error| error.to_string())
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Message ids, or `latest`.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// A tag to add (repeatable).
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// A tag to remove (repeatable); a tag no message has any more disappears.
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
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
    /// Leave the message unread (showing it marks it read, except --raw and --envelope).
    #[arg(long)]
    pub keep_unread: bool,
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

#[derive(Debug, Args)]
pub struct FlagArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Message ids, or `latest`.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// Take the star away instead.
    #[arg(long)]
    pub unflag: bool,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Message ids, or `latest`.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EchoCommand {
    /// Run an echo server that prints who connected and what they sent.
    #[command(
        after_help = "Examples:\n  sokkel echo serve                               127.0.0.1:10000, TCP\n  sokkel echo serve --listen [::]:10000 --udp     every address, TCP and UDP\n  sokkel echo serve --framing ascii-length        the course's 4-digit header\n  sokkel echo serve --quiet --listen 127.0.0.1:7  no line per message\n\nOutput (stdout), one line per event:\n  tcp 127.0.0.1:50312 connected to 127.0.0.1:10000\n  tcp 127.0.0.1:50312 12 bytes: hello world\\n\n  tcp 127.0.0.1:50312 left after 3.20 s, sent 12 bytes in 1 message"
    )]
    Serve(ServeArgs),
    /// Talk to an echo server: type a line, see its echo and the round-trip time.
    #[command(
        after_help = "Examples:\n  sokkel echo client 127.0.0.1:10000\n  printf 'one\\ntwo\\n' | sokkel echo client localhost:10000   each reply a line\n  sokkel echo client --udp [::1]:10000\n  sokkel echo client --framing ascii-length 127.0.0.1:10000\n\nOn a terminal: line editing and history; Ctrl-D closes the sending side,\nwaits for anything still coming and exits."
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
    /// Address to listen on (repeatable): host:port, 0.0.0.0:port, [::1]:port, [::]:port or :port (every address, IPv4 and IPv6).
    #[arg(
        long = "listen",
        value_name = "ADDR",
        default_value = "127.0.0.1:10000",
        env = "SOKKEL_ECHO_LISTEN",
        value_parser = |s: &str| parse_listen(s, 10000),
        value_delimiter = ','
    )]
    pub listen: Vec<ListenAddr>,
    /// Serve UDP on the same addresses as well.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_ECHO_UDP", conflicts_with = "udp_only")]
    pub udp: bool,
    /// Serve UDP only.
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_ECHO_UDP_ONLY")]
    pub udp_only: bool,
    #[command(flatten)]
    pub framing: FramingArgs<RawDefault>,
    /// Connections served at once; more are closed right after accept.
    #[arg(long, value_name = "N", default_value_t = 10_000, env = "SOKKEL_ECHO_MAX_CONNS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Close a connection after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_timeout, env = "SOKKEL_ECHO_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,
    /// On Ctrl-C or SIGTERM, how long open connections may take to finish their message.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, env = "SOKKEL_ECHO_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Duration,
    /// Do not print a line per message (connects and leaves are still printed).
    #[arg(value_parser = BoolishValueParser::new(), long, short, env = "SOKKEL_ECHO_QUIET")]
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
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_ECHO_UDP")]
    pub udp: bool,
    /// How long to wait for a connection or a reply.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout, env = "SOKKEL_ECHO_TIMEOUT")]
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
    #[arg(value_parser = BoolishValueParser::new(), long, env = "SOKKEL_BENCH_JSON")]
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

fn parse_max_messages(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not a number of messages; write e.g. 500 (0 means no limit)")
    })
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
