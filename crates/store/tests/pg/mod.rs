//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary
//! directory (as the `postgres` user when the tests run as root, since the
//! server refuses to run as root), a server on a free loopback port with its
//! Unix socket in that directory, and a fresh database per test.
//!
//! One cluster per test binary ([`cluster`]). A watchdog shell started with
//! it stops the server and removes the directory once the test process is
//! gone, however it ended. Shared with the binary's tests through `#[path]`.
//!
//! Needs PostgreSQL's server programs (Debian's `postgresql`; `.ci/run`
//! installs it): found under `PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else on `PATH`. Without them the tests that
//! use it fail, saying so.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// This test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A fresh, empty database in [`cluster`], as a `postgres://` URL.
pub fn fresh_database() -> String {
    cluster().fresh_database()
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    match found {
        Some(path) => Path::new(&path).parent().unwrap().to_path_buf(),
        None => panic!(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed: \
             `apt-get install postgresql` (.ci/run does), or set PG_BIN"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let bin = bin_dir();
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("sokkel-pg-")
            .tempdir()
            .unwrap()
            .keep();
        // The watchdog first, so that nothing is left behind even if start-up
        // fails half-way.
        let cluster = Cluster {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", cluster.dir.display());
        }
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = cluster.shell(&format!(
                "'{}' -D '{}' stop -m immediate",
                cluster.bin.join("pg_ctl").display(),
                cluster.data().display()
            )),
            dir = cluster.dir.display(),
        );
        // In the background of a shell that exits at once: the watchdog
        // outlives this process and is nobody's zombie.
        let status = Command::new("sh")
            .args(["-c", &format!("({watchdog}) </dev/null >/dev/null 2>&1 &")])
            .status()
            .unwrap();
        assert!(status.success(), "starting the cluster's watchdog");
        let out = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(cluster.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `text` as a shell command run as the cluster's owner.
    fn shell(&self, text: &str) -> String {
        if self.as_postgres {
            format!("runuser -u postgres -- {text}")
        } else {
            text.to_string()
        }
    }

    /// A command for one of PostgreSQL's programs, as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// Start the server (again) and wait until it accepts connections.
    ///
    /// Durability is off (these clusters die with the test) and the WAL is
    /// kept small: every `CREATE DATABASE` writes its template's pages to the
    /// WAL, and with the default `max_wal_size` of 1 GB a cluster grew by
    /// that much before its first checkpoint.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
             -c wal_level=minimal -c max_wal_senders=0 -c full_page_writes=off \
             -c min_wal_size=32MB -c max_wal_size=64MB",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop the server: `fast` disconnects clients and shuts down cleanly;
    /// otherwise `immediate`, as a crash would.
    pub fn stop_server(&self, fast: bool) {
        let mode = if fast { "fast" } else { "immediate" };
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Run SQL through psql on database `db`; its output, or a panic with
    /// psql's complaint.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new empty database; its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }
}
