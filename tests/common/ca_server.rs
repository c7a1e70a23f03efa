//! Starts a real `jpki-ca` process on loopback for integration tests, in a fresh directory,
//! and stops it when dropped. Include with `#[path = "common/ca_server.rs"] mod ca_server;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A running `jpki-ca serve`.
pub struct CaServer {
    child: Child,
    /// The CA directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// Plain HTTP address.
    pub http: SocketAddr,
    /// HTTPS address.
    pub https: SocketAddr,
}

impl CaServer {
    /// Starts the CA with extra `serve` arguments (e.g. `--poll-delay-ms 1500`).
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        let mut child = Command::new(env!("CARGO_BIN_EXE_jpki-ca"))
            .args(["serve", "--dir"])
            .arg(&ca_dir)
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jpki-ca");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("read jpki-ca stdout");
        if line.is_empty() {
            let mut err = String::new();
            child.stderr.take().expect("stderr").read_to_string(&mut err).ok();
            panic!("jpki-ca did not start: {err}");
        }
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .parse()
                .expect("address")
        };
        let http = field("http=");
        let https = field("https=");
        // Keep draining stderr so the CA never blocks on a full pipe.
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = err.read_to_end(&mut sink);
        });
        CaServer { child, dir, http, https }
    }

    /// A file in the CA directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join("ca").join(name)
    }

    /// A file's content as a trimmed string.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).expect("read CA file").trim().to_string()
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The CA's SQLite store, opened read-only beside the running server.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.file("ca.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open store")
    }

    /// Number of certificates in the store.
    pub fn cert_count(&self) -> i64 {
        self.db().query_row("SELECT COUNT(*) FROM certs", [], |r| r.get(0)).expect("count")
    }
}

impl Drop for CaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command in `dir`, returning its output (never panics on failure status).
pub fn run(dir: &std::path::Path, program: &str, args: &[&str]) -> Output {
    Command::new(program).current_dir(dir).args(args).output().expect("run command")
}

/// Combined stdout+stderr as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
