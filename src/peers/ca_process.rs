//! A `jpki-ca serve` process on loopback, for the demo and the UI walks: started in a
//! directory of its own, stopped (killed) on drop, restartable on the same ports so a
//! walk can take the CA away and bring it back.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Why the CA did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaProcessError {
    /// The program could not be run.
    #[error("starting {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It exited or printed something else instead of its listening line.
    #[error("jpki-ca did not start: {0}")]
    NotListening(String),
}

/// A running `jpki-ca serve`.
pub struct CaProcess {
    child: Option<Child>,
    paused: bool,
    program: PathBuf,
    dir: PathBuf,
    /// Plain HTTP address (CRLs).
    pub http: SocketAddr,
    /// HTTPS address (CMP with the RA certificate).
    pub https: SocketAddr,
}

impl CaProcess {
    /// Starts the CA with its files in `dir` (created on first start) on loopback ports
    /// chosen by the system.
    pub fn start(dir: &Path) -> Result<CaProcess, CaProcessError> {
        let program = sibling_binary("jpki-ca", "JPKI_CA");
        let (child, http, https) = spawn(&program, dir, "127.0.0.1:0", "127.0.0.1:0")?;
        Ok(CaProcess { child: Some(child), paused: false, program, dir: dir.to_path_buf(), http, https })
    }

    /// The CMP URL over HTTPS.
    pub fn cmp_url(&self) -> String {
        format!("https://{}/pkix/", self.https)
    }

    /// The CA's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Freezes the CA (SIGSTOP): connections are accepted by the kernel but nothing
    /// answers, so clients time out as with a CA that hangs.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// Lets a paused CA run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    /// Whether the CA is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(sig).arg(c.id().to_string()).status();
        }
    }

    /// Stops the CA (it stops answering at once).
    pub fn stop(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and files.
    pub fn restart(&mut self) -> Result<(), CaProcessError> {
        self.stop();
        let (child, _, _) = spawn(&self.program, &self.dir, &self.http.to_string(), &self.https.to_string())?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for CaProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(program: &Path, dir: &Path, http: &str, https: &str) -> Result<(Child, SocketAddr, SocketAddr), CaProcessError> {
    let mut child = Command::new(program)
        .args(["serve", "--dir"])
        .arg(dir)
        .args(["--listen", http, "--tls-listen", https])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CaProcessError::Spawn { program: program.to_path_buf(), source })?;
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    // The first start prints "initialised" before the listening line.
    while out.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening") {
        line.clear();
    }
    let field = |name: &str| -> Option<SocketAddr> {
        line.split_whitespace().find_map(|w| w.strip_prefix(name)).and_then(|a| a.parse().ok())
    };
    let (Some(h), Some(s)) = (field("http="), field("https=")) else {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.kill();
        let _ = child.wait();
        return Err(CaProcessError::NotListening(format!("{}{}", line.trim(), err.trim())));
    };
    // Keep draining both pipes so the CA never blocks on a full one.
    let mut err = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut err, &mut std::io::sink());
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    Ok((child, h, s))
}

/// A sibling program of the running one (or one level up, as test binaries live in
/// `deps/`), unless the environment variable `var` names it.
pub fn sibling_binary(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let here = dir.join(name);
    if here.is_file() {
        return here;
    }
    dir.parent().map(|d| d.join(name)).filter(|p| p.is_file()).unwrap_or(here)
}
