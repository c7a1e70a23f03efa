//! A private virtual card stack: pcscd (with vsmartcard's vpcd driver) in private mount
//! and network namespaces, and `jpki-vcard` processes that plug into its readers.
//!
//! Why namespaces: Debian's vpcd listens on every interface (ports 35963/35964) and only
//! one pcscd can own `/run/pcscd`. Inside a fresh network namespace the card ports exist
//! on that namespace's loopback only; a tmpfs on `/run/pcscd` in a private mount namespace
//! keeps a pcscd already running on the host untouched. Clients in the host namespace
//! reach the private pcscd through `/proc/<pid>/root/run/pcscd/pcscd.comm`, which
//! libpcsclite takes from `PCSCLITE_CSOCK_NAME` — read once per process, so a process
//! uses at most one stack ([`CardStack::start`] sets it for the calling process).
//!
//! Needs root, `unshare`, `nsenter`, `setpriv`, `ip`, `pcscd` and the vpcd driver. Dropping
//! the stack stops every process it started; if the owning process dies without dropping
//! it, the kernel kills them (parent-death signal). This module is not the kiosk's card access (that is
//! `card::transport`); it only provides something real to talk to.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::card::transport;
use crate::card::TransportError;

/// Environment variable libpcsclite reads for the pcscd socket path.
pub const SOCKET_ENV: &str = "PCSCLITE_CSOCK_NAME";
/// vpcd's TCP port for slot 0; slot 1 is the next one.
pub const VPCD_BASE_PORT: u16 = 35963;
/// The vpcd reader configuration Debian ships.
const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// Set once a stack has pointed this process's libpcsclite at its socket.
static SOCKET_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Why the stack could not start or a card could not be plugged in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// Namespaces and a tmpfs mount need root.
    #[error("the virtual card stack needs root (private mount and network namespaces)")]
    NotRoot,
    /// A required program or file is missing; the message names the Debian package.
    #[error("{what} not found: install {package}")]
    Missing {
        /// The program or file.
        what: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// libpcsclite reads the socket path once per process; a second stack cannot be used.
    #[error("this process already uses another card stack (libpcsclite reads its socket path once)")]
    OnePerProcess,
    /// pcscd (or a card process) did not come up in time; see the named log.
    #[error("{what} did not come up within {secs} s (log: {log})")]
    StartTimeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        secs: u64,
        /// The log file to read.
        log: String,
    },
    /// A started process exited early.
    #[error("{what} exited early with {status} (log: {log})")]
    Exited {
        /// Which process.
        what: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: String,
    },
    /// Slot out of range (vpcd has two).
    #[error("vpcd has slots 0 and 1, not {0}")]
    NoSuchSlot(usize),
    /// Talking to the private pcscd failed.
    #[error("pcscd: {0}")]
    Pcsc(#[from] TransportError),
    /// Spawning or file handling failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StackError {
    let context = context.into();
    move |source| StackError::Io { context, source }
}

/// Finds `name` on PATH or in the sbin directories (root's PATH is not always complete).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require(name: &str, package: &'static str) -> Result<PathBuf, StackError> {
    find_program(name).ok_or(StackError::Missing { what: name.to_string(), package })
}

/// A running private pcscd. Dropping it stops the card processes and pcscd.
pub struct CardStack {
    dir: PathBuf,
    unshare: Child,
    ns_pid: u32,
    nsenter: PathBuf,
    setpriv: PathBuf,
    vcard: PathBuf,
    cards: Vec<Arc<Mutex<Option<Child>>>>,
}

impl CardStack {
    /// Starts pcscd with vpcd in fresh namespaces, logging to `dir/pcscd.log`, waits
    /// until its socket answers and both vpcd readers are listed, and points this
    /// process's libpcsclite at it. Card processes run `jpki-vcard` found next to the
    /// running executable (or in `JPKI_VCARD`); see [`CardStack::set_vcard_binary`].
    pub fn start(dir: &Path) -> Result<CardStack, StackError> {
        // /proc/self belongs to the effective user.
        let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
        if euid != 0 {
            return Err(StackError::NotRoot);
        }
        let unshare = require("unshare", "util-linux")?;
        let nsenter = require("nsenter", "util-linux")?;
        let setpriv = require("setpriv", "util-linux")?;
        require("ip", "iproute2")?;
        require("pcscd", "pcscd")?;
        if !Path::new(VPCD_DRIVER).is_file() {
            return Err(StackError::Missing { what: VPCD_DRIVER.into(), package: "vsmartcard-vpcd" });
        }
        if SOCKET_CLAIMED.swap(true, Ordering::SeqCst) {
            return Err(StackError::OnePerProcess);
        }
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        // The tmpfs needs a mount point; creating it on the host is harmless.
        std::fs::create_dir_all("/run/pcscd").map_err(io_err("creating /run/pcscd"))?;
        let log_path = dir.join("pcscd.log");
        let log = File::create(&log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io_err("log"))?;
        // No `--apdu`: pcscd would log VERIFY data, i.e. PINs.
        // setpriv --pdeathsig: if this process dies without dropping the stack (a test
        // killed on timeout), the kernel kills unshare, and --kill-child takes pcscd along.
        let child = Command::new(&setpriv)
            .args(["--pdeathsig", "KILL", "--"])
            .arg(unshare)
            .args(["--mount", "--net", "--fork", "--propagation", "private", "--kill-child", "sh", "-c"])
            .arg("ip link set lo up && mount -t tmpfs -o mode=0755 tmpfs /run/pcscd && exec pcscd --foreground")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err("starting unshare"))?;
        let mut stack = CardStack {
            dir: dir.to_path_buf(),
            unshare: child,
            ns_pid: 0,
            nsenter,
            setpriv,
            vcard: default_vcard_binary(),
            cards: Vec::new(),
        };
        stack.ns_pid = stack.wait_inner_pid(&log_path)?;
        let socket = stack.socket_path();
        stack.wait_until(&log_path, "pcscd socket", Duration::from_secs(10), || socket.exists())?;
        std::env::set_var(SOCKET_ENV, &socket);
        stack.wait_readers(&log_path)?;
        Ok(stack)
    }

    fn wait_until(
        &mut self,
        log: &Path,
        what: &'static str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(status) = self.unshare.try_wait().map_err(io_err("waiting for unshare"))? {
                return Err(StackError::Exited { what: "pcscd", status, log: log.display().to_string() });
            }
            if Instant::now() >= deadline {
                return Err(StackError::StartTimeout { what, secs: timeout.as_secs(), log: log.display().to_string() });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid of pcscd inside the namespaces: unshare's only child.
    fn wait_inner_pid(&mut self, log: &Path) -> Result<u32, StackError> {
        let children = format!("/proc/{0}/task/{0}/children", self.unshare.id());
        let mut pid = 0;
        self.wait_until(log, "the namespaced pcscd", Duration::from_secs(10), || {
            pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            pid != 0
        })?;
        Ok(pid)
    }

    fn wait_readers(&mut self, log: &Path) -> Result<(), StackError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let listed = transport::establish()
                .and_then(|ctx| transport::list_readers(&ctx))
                .map(|r| r.len());
            match listed {
                Ok(n) if n >= 2 => return Ok(()),
                Ok(_) | Err(TransportError::NoReader | TransportError::NoService) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Err(StackError::StartTimeout { what: "vpcd readers", secs: 10, log: log.display().to_string() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Uses `path` as the `jpki-vcard` binary for cards started from now on.
    pub fn set_vcard_binary(&mut self, path: impl Into<PathBuf>) {
        self.vcard = path.into();
    }

    /// The pcscd socket as seen from the host namespace.
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/run/pcscd/pcscd.comm", self.ns_pid))
    }

    /// Environment a child process (pkcs15-tool, opensc-tool, ...) needs to use this stack.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(SOCKET_ENV.to_string(), self.socket_path().display().to_string())]
    }

    /// The pid of the namespaced pcscd (for `nsenter -t`).
    pub fn namespace_pid(&self) -> u32 {
        self.ns_pid
    }

    /// The directory holding the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The PC/SC name of vpcd slot `slot` (0 or 1).
    pub fn reader_name(&self, slot: usize) -> Result<CString, StackError> {
        if slot > 1 {
            return Err(StackError::NoSuchSlot(slot));
        }
        // Both names are fixed strings without NUL.
        Ok(CString::new(format!("Virtual PCD 00 {slot:02}")).expect("no NUL"))
    }

    /// Starts `jpki-vcard serve --state <state> --vpcd 127.0.0.1:<port of slot>` plus
    /// `extra` inside the stack's network namespace (its log: `dir/card<slot>.log`) and
    /// waits until pcscd reports the card present.
    pub fn start_card(
        &mut self,
        slot: usize,
        state: &Path,
        extra: &[&str],
    ) -> Result<CardProcess, StackError> {
        let reader = self.reader_name(slot)?;
        let port = VPCD_BASE_PORT + slot as u16;
        // setpriv --pdeathsig as for pcscd; nsenter then execs the card itself.
        let base: Vec<String> = vec![
            "--pdeathsig".into(),
            "KILL".into(),
            "--".into(),
            self.nsenter.display().to_string(),
            "-t".into(),
            self.ns_pid.to_string(),
            "-n".into(),
            "--".into(),
            self.vcard.display().to_string(),
            "serve".into(),
            "--state".into(),
            state.display().to_string(),
            "--vpcd".into(),
            format!("127.0.0.1:{port}"),
        ];
        let mut card = CardProcess {
            setpriv: self.setpriv.clone(),
            base,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log: self.dir.join(format!("card{slot}.log")),
            reader,
            child: Arc::new(Mutex::new(None)),
        };
        self.cards.push(card.child.clone());
        // A card killed a moment ago may still look present until pcscd's next presence
        // poll: wait until the slot is seen empty, or the new card would be mistaken for it.
        card.wait_absent()?;
        card.spawn()?;
        card.wait_present(Duration::from_secs(10))?;
        Ok(card)
    }
}

impl Drop for CardStack {
    fn drop(&mut self) {
        for c in &self.cards {
            if let Ok(mut guard) = c.lock() {
                if let Some(mut child) = guard.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        // SIGTERM to pcscd lets it clean up and unshare reap it; SIGKILL to unshare is
        // the fallback (--kill-child makes the kernel kill pcscd with it). The namespaces
        // (tmpfs, vpcd ports) vanish with their last process. The shell's `kill` builtin
        // rather than a libc call keeps this crate free of unsafe code (and needs no
        // procps on a minimal image).
        if self.ns_pid != 0 {
            let _ = Command::new("sh")
                .args(["-c", "kill -TERM \"$1\"", "sh", &self.ns_pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match self.unshare.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// `jpki-vcard` found next to the running program, or one level up (test binaries live in
/// `deps/`), unless `JPKI_VCARD` names it.
fn default_vcard_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("JPKI_VCARD") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let here = dir.join("jpki-vcard");
    if here.is_file() {
        return here;
    }
    dir.parent().map(|d| d.join("jpki-vcard")).filter(|p| p.is_file()).unwrap_or(here)
}

/// A `jpki-vcard serve` process plugged into a [`CardStack`] slot. Dropping it kills it.
pub struct CardProcess {
    setpriv: PathBuf,
    /// `setpriv ... nsenter ... jpki-vcard serve --state FILE --vpcd ADDR`.
    base: Vec<String>,
    /// Further `serve` options (profile, faults).
    extra: Vec<String>,
    log: PathBuf,
    reader: CString,
    child: Arc<Mutex<Option<Child>>>,
}

impl CardProcess {
    fn spawn(&mut self) -> Result<(), StackError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_err(format!("opening {}", self.log.display())))?;
        let log2 = log.try_clone().map_err(io_err("log"))?;
        // setpriv and nsenter each exec the next program: the child is the card itself.
        let child = Command::new(&self.setpriv)
            .args(&self.base)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err("starting jpki-vcard"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// The PC/SC reader this card sits in.
    pub fn reader(&self) -> &std::ffi::CStr {
        &self.reader
    }

    /// The card's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn with_child<R>(&self, f: impl FnOnce(&mut Option<Child>) -> R) -> R {
        f(&mut self.child.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until pcscd lists the card as present, failing early if the process exits.
    pub fn wait_present(&mut self, timeout: Duration) -> Result<(), StackError> {
        let ctx = transport::establish()?;
        let deadline = Instant::now() + timeout;
        loop {
            match transport::wait_for_card(&ctx, &self.reader, Duration::from_millis(200)) {
                Ok(_) => return Ok(()),
                Err(TransportError::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(status) = self.try_exit_status()? {
                return Err(StackError::Exited { what: "jpki-vcard", status, log: self.log.display().to_string() });
            }
            if Instant::now() >= deadline {
                return Err(StackError::StartTimeout {
                    what: "the virtual card",
                    secs: timeout.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
        }
    }

    /// The exit status, if the process has ended.
    pub fn try_exit_status(&self) -> Result<Option<ExitStatus>, StackError> {
        self.with_child(|c| match c {
            Some(child) => child.try_wait().map_err(io_err("waiting for jpki-vcard")),
            None => Ok(None),
        })
    }

    /// Waits up to `timeout` for the process to end by itself (e.g. a fault option
    /// "pulled" the card); `None` if it is still running.
    pub fn wait_exit(&self, timeout: Duration) -> Result<Option<ExitStatus>, StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit_status()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A handle that kills this card from another thread.
    pub fn kill_handle(&self) -> KillHandle {
        KillHandle { child: self.child.clone() }
    }

    /// SIGKILL, as a card pulled mid-operation: no chance to finish anything. Returns
    /// once pcscd reports the reader empty.
    pub fn kill(&mut self) -> Result<(), StackError> {
        self.with_child(|c| {
            if let Some(mut child) = c.take() {
                let _ = child.kill();
                child.wait().map_err(io_err("reaping jpki-vcard"))?;
            }
            Ok::<(), StackError>(())
        })?;
        self.wait_absent()
    }

    fn wait_absent(&self) -> Result<(), StackError> {
        let ctx = transport::establish()?;
        match transport::wait_for_removal(&ctx, &self.reader, Duration::from_secs(5)) {
            Ok(()) => Ok(()),
            Err(TransportError::Timeout) => Err(StackError::StartTimeout {
                what: "an empty reader (is another card still plugged in?)",
                secs: 5,
                log: self.log.display().to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Kills the card if it still runs and starts it again with the same state file and
    /// options, waiting until it is present.
    pub fn restart(&mut self) -> Result<(), StackError> {
        self.kill()?;
        self.spawn()?;
        self.wait_present(Duration::from_secs(10))
    }

    /// Like [`CardProcess::restart`], with new extra options (fault options change).
    pub fn restart_with(&mut self, extra: &[&str]) -> Result<(), StackError> {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart()
    }
}

/// Kills a [`CardProcess`] from another thread (a card pulled while the kiosk is in the
/// middle of a command).
#[derive(Clone)]
pub struct KillHandle {
    child: Arc<Mutex<Option<Child>>>,
}

impl KillHandle {
    /// SIGKILL now; the owning [`CardProcess`] can restart it later.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for CardProcess {
    fn drop(&mut self) {
        // No wait for pcscd here: the next start_card in this slot waits for it.
        self.kill_handle().kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_sbin() {
        // `sh` exists on every system this runs on; a made-up name does not.
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-jpki").is_none());
        let e = require("no-such-program-jpki", "some-package").unwrap_err();
        assert!(e.to_string().contains("install some-package"), "{e}");
    }
}
