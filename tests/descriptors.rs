//! The real binary under a low open-file limit, flooded with connections
//! that send nothing: accepting runs out before probes do, so healthy
//! mirrors stay up and clients are still sent to them, not to the fallback.

mod support;

use std::process::{Child, Command, Stdio};

use support::process::addresses;
use support::*;

/// The open-file limit the flooded binary runs under, and the flood: more
/// connections than the limit holds (it serves 170 beside its reserve of
/// 130), fewer than that plus the listen queue (1,024), so that every one
/// connects.
const LIMIT: u32 = 300;
const FLOOD: usize = 340;

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The soft and hard "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

/// The binary serving `yaml` under these open-file limits, and its public
/// and admin addresses.
fn serve(dir: &tempfile::TempDir, yaml: &str, soft: u32, hard: u32) -> (Server, String, String) {
    let path = dir.path().join("mirrorgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    // The soft limit first: a hard limit below the soft one is refused.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" serve --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_mirrorgate"))
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let (public, admin) = addresses(&mut server.0);
    (server, public, admin)
}

fn one_mirror(m: &FakeMirror, top: &str) -> String {
    config_yaml(&[M::de_fra(m.url())], top)
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let m = FakeMirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, _, _) = serve(&dir, &one_mirror(&m, ""), 100, 300);
    assert_eq!(
        open_file_limits(server.0.id()),
        ("300".to_string(), "300".to_string())
    );
}

#[tokio::test]
async fn a_connection_flood_under_a_low_open_file_limit_keeps_healthy_mirrors_up() {
    let m = FakeMirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Probes every 300 ms; the flood's connections are not timed out while
    // the test runs.
    let top = "trusted_proxies: [127.0.0.0/8]\nfallback: http://fallback.invalid/\n\
               health:\n  interval: 300ms\n  timeout: 250ms\n  rise: 1\n  fall: 2\n\
               limits:\n  header_timeout: 5m";
    let (_server, public, admin) = serve(&dir, &one_mirror(&m, top), LIMIT, LIMIT);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let metrics = || async {
        match http.get(format!("http://{admin}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let ok_probes = "mirrorgate_probes_total{mirror=\"de-fra\",result=\"ok\"}";
    let up = "mirrorgate_mirror_up{mirror=\"de-fra\"}";
    poll_until("the mirror up", || async {
        value(&metrics().await, up) == Some(1.0)
    })
    .await;

    // More connections than the limit can hold, each sending nothing.
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(tokio::net::TcpStream::connect(&public).await.unwrap());
    }
    let before = value(&metrics().await, ok_probes).unwrap_or(0.0);
    // Probes keep running, and succeeding, while the flood holds.
    poll_until("probes succeeding during the flood", || async {
        let text = metrics().await;
        value(&text, ok_probes).is_some_and(|n| n >= before + 3.0) && value(&text, up) == Some(1.0)
    })
    .await;
    let mirrors: serde_json::Value = http
        .get(format!("http://{admin}/api/v1/mirrors"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(mirrors["mirrors"][0]["state"], "up", "{mirrors}");

    // After the flood, a fresh connection is sent to the mirror.
    drop(flood);
    let r = http
        .get(format!("http://{public}/x.iso"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&m.url()), "sent to {location}");
}
