//! The real `mirrorgate serve` as a child process, and other processes a
//! test starts (front proxies, Prometheus): spawned with their output kept
//! for the failure message, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The public and admin addresses that the "mirrorgate serving" log line
/// names, if this is that line.
pub fn serving_addresses(line: &str) -> Option<(String, String)> {
    if !line.contains("mirrorgate serving") {
        return None;
    }
    let field = |k: &str| {
        line.split(&format!("{k}="))
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_string)
    };
    Some((field("public_addr")?, field("admin_addr")?))
}

/// Reads a `mirrorgate serve` child's log (its piped stderr) until the line
/// that names the bound addresses, then keeps draining it so that the child
/// never blocks on a full pipe.
pub fn addresses(child: &mut Child) -> (String, String) {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("read the log");
        if let Some(out) = serving_addresses(&line) {
            std::thread::spawn(move || for _ in lines {});
            return out;
        }
    }
    panic!("the server exited before listening");
}

/// `mirrorgate serve --config PATH` with these extra environment variables.
pub struct Served {
    /// Taken by [`Served::exit`].
    child: Option<Child>,
    /// The bound addresses, read back from the log.
    pub public: String,
    pub admin: String,
    /// Every log line so far (for failure messages).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorgate"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mirrorgate");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line.expect("read the log");
            log.lock().unwrap().push(line.clone());
            if let Some((public, admin)) = serving_addresses(&line) {
                // Keep draining the log so the child never blocks on a full pipe.
                let keep = log.clone();
                std::thread::spawn(move || {
                    for line in lines.map_while(Result::ok) {
                        keep.lock().unwrap().push(line);
                    }
                });
                return Served {
                    child: Some(child),
                    public,
                    admin,
                    log,
                };
            }
        }
        let _ = child.wait();
        panic!(
            "mirrorgate exited before listening:\n{}",
            log.lock().unwrap().join("\n")
        );
    }

    /// Sends a signal (`-HUP`, `-TERM`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill {sig} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits (within the deadline) for the process to exit; its status.
    pub async fn exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("not waited for yet");
        super::within("mirrorgate to exit", async move {
            tokio::task::spawn_blocking(move || child.wait().expect("wait"))
                .await
                .expect("the waiting thread")
        })
        .await
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A helper process (nginx, haproxy, prometheus), killed when dropped.
pub struct Helper(pub Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of a tool that checks `deploy/` (nginx, haproxy, prometheus):
/// on PATH, or in /usr/sbin where Debian puts daemons. A missing one skips
/// with a NOTE, except under CI (`CI` set: `.ci/run` installs them all
/// before the tests), where it fails naming the Debian package.
pub fn deploy_tool(name: &str, package: &str) -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        return Some(sbin);
    }
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return Some(PathBuf::from(name));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing: .ci/run must install Debian's {package}"
    );
    eprintln!("NOTE: {name} is not installed (apt-get install {package}): this check is NOT run");
    None
}

/// A loopback port free now, for a config file that needs a number.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local address").port()
}
