//! A throwaway Dovecot (Debian's `dovecot-imapd`) on a loopback port, and the
//! few lines of IMAP client the differential test speaks to it and to sokkel.

pub mod corpus;
pub mod sokkel;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start or to answer one command.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A Dovecot started for one test, stopped (and its files removed) on drop.
pub struct Dovecot {
    process: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The one login of the throwaway Dovecot.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "secret";

impl Dovecot {
    /// Starts Dovecot with a config of its own under a temporary directory:
    /// IMAP only, on 127.0.0.1, no TLS, one passwd-file user whose mail is a
    /// maildir in that directory. Panics with what to install when Dovecot is
    /// missing.
    pub fn start() -> Dovecot {
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .expect("Dovecot is not installed: apt-get install dovecot-imapd");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let owner = Owner::for_dir(dir.path());
        let config = owner.config(dir.path(), port);
        fs::write(dir.path().join("dovecot.conf"), config).expect("write dovecot.conf");
        fs::write(
            dir.path().join("passwd"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{}:{}::{}\n",
                owner.uid,
                owner.gid,
                dir.path().join("home").display()
            ),
        )
        .expect("write passwd");
        for sub in ["home", "mail", "state", "run"] {
            fs::create_dir(dir.path().join(sub)).expect("create a Dovecot directory");
        }
        owner.hand_over(dir.path());
        let process = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(dir.path().join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        let dovecot = Dovecot { process, port, dir };
        dovecot.wait_until_listening();
        dovecot
    }

    fn wait_until_listening(&self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < DEADLINE,
                "Dovecot did not listen within {DEADLINE:?}; its log:\n{}",
                fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A logged-in session with INBOX selected.
    pub fn login(&self) -> Client {
        Client::login(self.port, USER, PASSWORD)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; a kill would leave them.
        let _ = Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.process.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Who Dovecot's processes and the mail belong to: the current user, or,
/// when that is root (which Dovecot's login processes refuse), Dovecot's own
/// unprivileged users as the Debian package creates them.
struct Owner {
    uid: u32,
    gid: u32,
    internal_user: String,
    login_user: String,
}

impl Owner {
    fn for_dir(dir: &Path) -> Owner {
        let meta = fs::metadata(dir).expect("stat the temporary directory");
        if meta.uid() != 0 {
            let name = String::from_utf8(
                Command::new("id")
                    .arg("-un")
                    .output()
                    .expect("run id")
                    .stdout,
            )
            .expect("a user name")
            .trim()
            .to_owned();
            return Owner {
                uid: meta.uid(),
                gid: meta.gid(),
                internal_user: name.clone(),
                login_user: name,
            };
        }
        let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let dovecot = passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields[0] == "dovecot")
            .expect("no dovecot user: apt-get install dovecot-imapd");
        Owner {
            uid: dovecot[2].parse().expect("a uid"),
            gid: dovecot[3].parse().expect("a gid"),
            internal_user: "dovecot".to_owned(),
            login_user: "dovenull".to_owned(),
        }
    }

    fn config(&self, dir: &Path, port: u16) -> String {
        let dir = dir.display();
        format!(
            "protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
default_internal_user = {internal}
default_login_user = {login}
mail_location = maildir:{dir}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
",
            internal = self.internal_user,
            login = self.login_user,
        )
    }

    /// Gives the mail and home directories to the mail user.
    fn hand_over(&self, dir: &Path) {
        for sub in ["", "home", "mail"] {
            std::os::unix::fs::chown(dir.join(sub), Some(self.uid), Some(self.gid))
                .expect("chown for Dovecot");
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A minimal IMAP client: one command at a time, responses kept whole
/// (literals included) for imap-codec to parse.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Client {
    /// Connects to 127.0.0.1:`port` and reads the greeting.
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the IMAP server");
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        let writer = stream.try_clone().expect("clone the stream");
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = client.response();
        assert!(
            greeting.starts_with(b"* OK"),
            "greeting: {}",
            String::from_utf8_lossy(&greeting)
        );
        client
    }

    /// Connects, logs in as `user` and selects INBOX.
    pub fn login(port: u16, user: &str, password: &str) -> Client {
        let mut client = Client::connect(port);
        client.ok(&format!("LOGIN {user} {password}"));
        client.ok("SELECT INBOX");
        client
    }

    /// Runs `command` (literals as `{n+}`), expecting OK; the untagged
    /// responses, each whole with its CRLF.
    pub fn ok(&mut self, command: &str) -> Vec<Vec<u8>> {
        self.ok_bytes(command.as_bytes())
    }

    /// [`Client::ok`] for a command that is not UTF-8.
    pub fn ok_bytes(&mut self, command: &[u8]) -> Vec<Vec<u8>> {
        self.tag += 1;
        let tag = format!("T{}", self.tag);
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.writer.write_all(&line).expect("send a command");
        let mut untagged = Vec::new();
        loop {
            let response = self.response();
            if response.starts_with(format!("{tag} ").as_bytes()) {
                assert!(
                    response.starts_with(format!("{tag} OK").as_bytes()),
                    "{}\n→ {}",
                    String::from_utf8_lossy(command),
                    String::from_utf8_lossy(&response)
                );
                return untagged;
            }
            untagged.push(response);
        }
    }

    /// APPENDs `message` to INBOX.
    pub fn append(&mut self, message: &[u8]) {
        let mut command = format!("APPEND INBOX {{{}+}}\r\n", message.len()).into_bytes();
        command.extend_from_slice(message);
        self.ok_bytes(&command);
    }

    /// One response: a line, and the literals it announces with the lines
    /// that follow them.
    fn response(&mut self) -> Vec<u8> {
        let mut response = Vec::new();
        loop {
            let start = response.len();
            let read = self
                .reader
                .read_until(b'\n', &mut response)
                .expect("read a response");
            assert!(read > 0, "the server closed the connection");
            match literal_length(&response[start..]) {
                Some(length) => {
                    let at = response.len();
                    response.resize(at + length, 0);
                    self.reader
                        .read_exact(&mut response[at..])
                        .expect("read a literal");
                }
                None => return response,
            }
        }
    }
}

/// `n` when `line` ends with `{n}\r\n`.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}\r\n")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}
