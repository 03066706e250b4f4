//! The server's answer, its explanation (`/api/v1/explain`) and the
//! `explain` command must agree: for random clients of the test GeoIP
//! database and random paths, a download goes where the explanation says
//! (a mirror of its spread band, or the same 404 / 503), and the command,
//! with the same config, says the same. In proxy mode both say `proxy`.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::*;

/// (name, country, latitude, longitude) of the mirrors; the last one has no
/// trace file, so only on-demand checks can say what it holds.
const SITES: [(&str, &str, f64, f64); 5] = [
    ("de-fra", "DE", 50.11, 8.68),
    ("us-nyc", "US", 40.71, -74.01),
    ("jp-tyo", "JP", 35.68, 139.69),
    ("br-sao", "BR", -23.55, -46.63),
    ("za-jnb", "ZA", -26.2, 28.05),
];
/// `a.iso` is old and everywhere; `new.iso` is newer than every trace and
/// held only by de-fra and us-nyc; `missing.iso` is not published.
const PATHS: [&str; 3] = ["/a.iso", "/new.iso", "/missing.iso"];

struct World {
    app: TestApp,
    mirrors: Vec<TreeMirror>,
    config: String,
    _dir: tempfile::TempDir,
}

async fn world(extra_top: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let old = origin.join("a.iso");
    std::fs::write(&old, b"old file\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    // Synced half an hour ago: after a.iso, before new.iso.
    let trace = format!(
        "{}\n",
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(1800))
    );
    let mut mirrors = Vec::new();
    for (i, _) in SITES.iter().enumerate() {
        let m = TreeMirror::start().await;
        m.put("a.iso", &b"old file\n"[..]);
        if i < 2 {
            m.put("new.iso", &b"new file\n"[..]);
        }
        if i < SITES.len() - 1 {
            m.put("project/trace/origin", trace.clone());
        }
        mirrors.push(m);
    }
    std::fs::write(origin.join("new.iso"), b"new file\n").unwrap();
    let ms: Vec<M<'_>> = SITES
        .iter()
        .zip(&mirrors)
        .map(|(&(name, cc, lat, lon), m)| M {
            name,
            url: m.url(),
            cc,
            lat,
            lon,
            extra: "",
        })
        .collect();
    // Every mirror not known to hold a file is checked at once (parallel:
    // 16), so that which ones are checked does not depend on the draw.
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\n{extra_top}\norigin:\n  root: {}\n  settle: 1s\n  trace_file: project/trace/origin\n  on_demand:\n    wait: 5s\n    parallel: 16\n",
        origin.display()
    );
    let yaml = config_yaml(&ms, &top);
    let config = dir.path().join("mirrorgate.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let app = TestApp::start(&yaml).await;
    app.wait_for("the index and every trace", |s| {
        s.content.lookup("new.iso").is_some()
            && s.mirrors
                .iter()
                .filter(|e| e.health.last_sync.is_some())
                .count()
                == SITES.len() - 1
    })
    .await;
    World {
        app,
        mirrors,
        config: config.to_str().unwrap().to_string(),
        _dir: dir,
    }
}

/// A random address of the test database: any of its three IPv4 ranges
/// (every country, and addresses without a record), or one of its IPv6
/// networks.
fn random_client(rng: &mut SmallRng) -> IpAddr {
    if rng.random_bool(0.2) {
        format!("2001:db8:{:x}::10", rng.random_range(1..=15u32))
            .parse()
            .unwrap()
    } else {
        let net = ["192.0.2", "198.51.100", "203.0.113"][rng.random_range(0..3)];
        format!("{net}.{}", rng.random_range(0..=255u32))
            .parse()
            .unwrap()
    }
}

/// The mirror a URL points into.
fn mirror_of(w: &World, url: &str) -> String {
    let i = w
        .mirrors
        .iter()
        .position(|m| url.starts_with(&m.url()))
        .unwrap_or_else(|| panic!("{url} is on no mirror"));
    SITES[i].0.to_string()
}

/// The mirrors explanation `v` may send the client to: its spread band.
fn band(v: &serde_json::Value) -> BTreeSet<String> {
    v["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["in_band"] == true && m["reason"] == "eligible")
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

fn seed() -> u64 {
    let seed = std::env::var("DECISION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("DECISION_SEED={seed}");
    seed
}

#[tokio::test]
async fn a_download_goes_where_the_explanation_says_for_random_clients() {
    let w = world("").await;
    let mut rng = SmallRng::seed_from_u64(seed());
    for _ in 0..60 {
        let ip = random_client(&mut rng);
        let path = PATHS[rng.random_range(0..PATHS.len())];
        let v = w
            .app
            .admin_json(&format!("/api/v1/explain?ip={ip}&path={path}"))
            .await;
        let (status, location) = w.app.get_from(&ip.to_string(), path).await;
        let what = format!("{ip} {path}: explain {v}");
        match v["outcome"].as_str().unwrap() {
            "redirect" => {
                assert_eq!(status, 302, "{what}");
                let to = mirror_of(&w, location.as_deref().unwrap());
                assert!(band(&v).contains(&to), "sent to {to}: {what}");
            }
            "not_found" => assert_eq!(status, 404, "{what}"),
            "no_mirror" => assert_eq!(status, 503, "{what}"),
            other => panic!("unexpected outcome {other}: {what}"),
        }
    }
}

/// `mirrorgate explain` with the server's config says what the server does.
#[tokio::test]
async fn the_explain_command_agrees_with_the_server_for_random_clients() {
    let w = world("").await;
    let mut rng = SmallRng::seed_from_u64(seed());
    for k in 0..8 {
        let ip = random_client(&mut rng);
        // Each path at least twice, then at random.
        let path = if k < 6 {
            PATHS[k % PATHS.len()]
        } else {
            PATHS[rng.random_range(0..PATHS.len())]
        };
        let v = w
            .app
            .admin_json(&format!("/api/v1/explain?ip={ip}&path={path}"))
            .await;
        let (status, _) = w.app.get_from(&ip.to_string(), path).await;
        let config = w.config.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
                .args([
                    "explain",
                    "--config",
                    &config,
                    "--ip",
                    &ip.to_string(),
                    path,
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let what = format!(
            "{ip} {path}: server {status}, explain {v}\ncommand:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{what}");
        let line = stdout.lines().nth(1).unwrap_or_default();
        match status {
            302 => {
                let url = line
                    .strip_prefix(&format!("redirect {path} -> "))
                    .unwrap_or_else(|| panic!("not a redirect: {what}"));
                let to = mirror_of(&w, url);
                assert!(band(&v).contains(&to), "command chose {to}: {what}");
            }
            404 => assert_eq!(
                line,
                format!("not_found {path}: the origin does not publish it (404)"),
                "{what}"
            ),
            503 => assert!(line.ends_with("(503)"), "{what}"),
            other => panic!("unexpected status {other}: {what}"),
        }
    }
}

/// In proxy mode the answer is the file itself: the API and the command say
/// `proxy`, with the mirror it is fetched from first.
#[tokio::test]
async fn in_proxy_mode_explain_says_proxy() {
    let w = world("mode: proxy").await;
    let v = w
        .app
        .admin_json(&format!("/api/v1/explain?ip={DE}&path=/a.iso"))
        .await;
    assert_eq!(v["outcome"], "proxy", "{v}");
    assert_eq!(v["location"], format!("{}a.iso", w.mirrors[0].url()), "{v}");
    let r = w
        .app
        .http
        .get(w.app.url("/a.iso"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the file itself");
    let config = w.config.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
            .args(["explain", "--config", &config, "--ip", DE, "/a.iso"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("proxy /a.iso -> {}a.iso", w.mirrors[0].url())),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
