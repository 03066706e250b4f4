//! Per-file decisions end to end: an origin tree indexed and hashed by the
//! real indexer, fake mirrors with trees and trace files that differ, clients
//! placed by the demo GeoIP database.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use support::*;

const OLD: &[u8] = &[7u8; 2000];
const NEW: &[u8] = &[8u8; 3000];
const NEW2: &[u8] = &[9u8; 3100];

fn put(root: &Path, rel: &str, body: &[u8], age: Duration) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn trace(age: Duration) -> String {
    format!(
        "{}\n",
        humantime::format_rfc3339_seconds(SystemTime::now() - age)
    )
}

struct World {
    app: TestApp,
    de: TreeMirror,
    us: TreeMirror,
    fr: TreeMirror,
    _origin: tempfile::TempDir,
}

async fn world() -> World {
    let origin = tempfile::tempdir().unwrap();
    let root = origin.path();
    put(root, "releases/old.iso", OLD, Duration::from_secs(7200));
    put(root, "releases/new.iso", NEW, Duration::from_secs(60));
    put(root, "releases/new2.iso", NEW2, Duration::from_secs(60));
    put(root, "releases/wrong.iso", NEW, Duration::from_secs(60));
    put(
        root,
        "dists/stable/Release",
        &[1u8; 500],
        Duration::from_secs(7200),
    );
    put(root, "tiny.txt", b"tiny", Duration::from_secs(7200));

    // de: synced 30 minutes ago (after old.iso, before the new files).
    let de = TreeMirror::start().await;
    de.put("project/trace/origin", trace(Duration::from_secs(1800)));
    de.put("releases/old.iso", OLD);
    de.put("releases/new2.iso", NEW2);
    de.put("releases/wrong.iso", &b"short"[..]);
    // us: synced just now, has everything.
    let us = TreeMirror::start().await;
    us.put("project/trace/origin", trace(Duration::ZERO));
    for (p, b) in [
        ("releases/old.iso", OLD),
        ("releases/new.iso", NEW),
        ("releases/new2.iso", NEW2),
        ("releases/wrong.iso", NEW),
    ] {
        us.put(p, b);
    }
    // fr: five hours behind, past max_lag, though it has every file.
    let fr = TreeMirror::start().await;
    fr.put("project/trace/origin", trace(Duration::from_secs(5 * 3600)));
    for (p, b) in [("releases/old.iso", OLD), ("releases/new.iso", NEW)] {
        fr.put(p, b);
    }
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\nfallback: https://origin.example.org/pub/\n\
         selection:\n  band: 0\n  band_km: 0\n\
         origin:\n  root: {}\n  settle: 1s\n  trace_file: project/trace/origin\n  max_lag: 3h\n  never_redirect: [Release]\n  min_redirect_size: 100\n",
        root.display()
    );
    let yaml = config_yaml(
        &[
            M {
                name: "de",
                url: de.url(),
                cc: "DE",
                lat: 50.11,
                lon: 8.68,
                extra: "",
            },
            M {
                name: "fr",
                url: fr.url(),
                cc: "FR",
                lat: 48.86,
                lon: 2.35,
                extra: "",
            },
            M {
                name: "us",
                url: us.url(),
                cc: "US",
                lat: 40.71,
                lon: -74.01,
                extra: "",
            },
        ],
        &top,
    );
    let app = TestApp::start(&yaml).await;
    World {
        app,
        de,
        us,
        fr,
        _origin: origin,
    }
}

impl World {
    async fn goes_to(&self, path: &str) -> String {
        let (status, loc) = self.app.get_from(DE, path).await;
        assert_eq!(status, 302, "{path}");
        let loc = loc.unwrap();
        for (name, m) in [("de", &self.de), ("us", &self.us), ("fr", &self.fr)] {
            if loc.starts_with(&m.url()) {
                return name.to_string();
            }
        }
        loc
    }
}

#[tokio::test]
async fn files_go_only_where_they_are() {
    let w = world().await;
    let snap = w.app.app.state().load_full();
    assert!(snap.mirror("fr").unwrap().lag.unwrap() > Duration::from_secs(4 * 3600));
    assert!(snap.mirror("de").unwrap().health.last_sync.is_some());
    assert_eq!(
        snap.fresh_since, None,
        "fr lags: no file skips its verdicts"
    );
    let api: serde_json::Value = w.app.admin_json("/api/v1/mirrors/fr").await;
    assert!(api["lag_seconds"].as_u64().unwrap() > 4 * 3600, "{api}");
    assert!(api["last_sync"].as_str().unwrap().ends_with('Z'));
    assert_eq!(api["trace_error"], serde_json::Value::Null);

    // An old file: the nearest fresh mirror; never the lagging one, however near.
    for _ in 0..5 {
        assert_eq!(w.goes_to("/releases/old.iso").await, "de");
    }
    // Just published, and de (synced before it) lacks it: checked, then elsewhere.
    assert_eq!(w.goes_to("/releases/new.iso").await, "us");
    assert!(
        w.de.hits_of("releases/new.iso") >= 1,
        "de was asked about new.iso"
    );
    // The answer is cached: no second check.
    let asked = w.de.hits_of("releases/new.iso");
    assert_eq!(w.goes_to("/releases/new.iso").await, "us");
    assert_eq!(w.de.hits_of("releases/new.iso"), asked);
    // Just published, and de has it (same size): confirmed on demand, so de.
    assert_eq!(w.goes_to("/releases/new2.iso").await, "de");
    // de has a copy of another size: not de.
    assert_eq!(w.goes_to("/releases/wrong.iso").await, "us");
    // The lagging mirror never got a redirect.
    let fr_redirects = w.app.app.metrics().render();
    assert!(
        fr_redirects.contains("mirrorgate_redirects_total{mirror=\"fr\"} 0"),
        "{fr_redirects}"
    );

    // The explanation says why.
    let ex = w
        .app
        .admin_json(&format!("/api/v1/explain?ip={DE}&path=/releases/new.iso"))
        .await;
    let reason = |name: &str| {
        ex["mirrors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()["reason"]
            .clone()
    };
    assert_eq!(reason("fr"), "lagging");
    assert_eq!(reason("de"), "missing");
    assert_eq!(reason("us"), "eligible");
}

#[tokio::test]
async fn unknown_paths_rules_and_hashes() {
    let w = world().await;
    for p in ["/releases/nope.iso", "/releases/", "/", "/releases"] {
        let (status, _) = w.app.get_from(DE, p).await;
        assert_eq!(status, 404, "{p}");
    }
    // never_redirect and small files stay on the origin.
    let (s, loc) = w.app.get_from(DE, "/dists/stable/Release").await;
    assert_eq!(
        (s, loc.as_deref()),
        (
            302,
            Some("https://origin.example.org/pub/dists/stable/Release")
        )
    );
    let (s, loc) = w.app.get_from(DE, "/tiny.txt").await;
    assert_eq!(
        (s, loc.as_deref()),
        (302, Some("https://origin.example.org/pub/tiny.txt"))
    );

    // Hashes arrive in the background; then every redirect carries them.
    w.app
        .wait_for("the hash of old.iso", |s| {
            s.content
                .lookup("releases/old.iso")
                .and_then(|(_, i)| i.sha256)
                .is_some()
        })
        .await;
    let digest = Sha256::digest(OLD);
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let r = w
        .app
        .http
        .get(w.app.url("/releases/old.iso"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["digest"], format!("sha-256={b64}").as_str());
    assert_eq!(
        r.headers()["repr-digest"],
        format!("sha-256=:{b64}:").as_str()
    );

    // ?sha256 in the format sha256sum -c accepts, checked by sha256sum itself.
    let line = w
        .app
        .http
        .get(w.app.url("/releases/old.iso?sha256"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(line, format!("{hex}  old.iso\n"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.iso"), OLD).unwrap();
    std::fs::write(dir.path().join("SUMS"), &line).unwrap();
    let out = std::process::Command::new("sha256sum")
        .args(["-c", "SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (s, _) = w.app.get_from(DE, "/releases/nope.iso?sha256").await;
    assert_eq!(s, 404);
}

/// When every mirror synced after a file and none lags, the running server
/// knows it (`fresh_since`) and answers without a verdict per mirror.
#[tokio::test]
async fn a_server_whose_mirrors_are_all_fresh_knows_it() {
    let origin = tempfile::tempdir().unwrap();
    put(
        origin.path(),
        "releases/old.iso",
        OLD,
        Duration::from_secs(7200),
    );
    let mut mirrors = Vec::new();
    for _ in 0..2 {
        let m = TreeMirror::start().await;
        m.put("project/trace/origin", trace(Duration::from_secs(60)));
        m.put("releases/old.iso", OLD);
        mirrors.push(m);
    }
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\nfallback: https://origin.example.org/pub/\n\
         origin:\n  root: {}\n  settle: 1s\n  trace_file: project/trace/origin\n  max_lag: 3h\n",
        origin.path().display()
    );
    let ms: Vec<M> = mirrors
        .iter()
        .zip([("de", "DE", 50.11, 8.68), ("us", "US", 40.71, -74.01)])
        .map(|(m, (name, cc, lat, lon))| M {
            name,
            url: m.url(),
            cc,
            lat,
            lon,
            extra: "",
        })
        .collect();
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    let snap = app
        .wait_for("the index and both trace files", |s| {
            s.content.len() == 1 && s.mirrors.iter().all(|e| e.health.last_sync.is_some())
        })
        .await;
    let oldest_sync = snap
        .mirrors
        .iter()
        .filter_map(|e| e.health.last_sync)
        .min()
        .unwrap();
    let secs = oldest_sync
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(snap.fresh_since, Some(secs));
    let file_time = secs - 7000;
    assert!(snap.all_fresh_for(file_time));
    let (status, loc) = app.get_from(DE, "/releases/old.iso").await;
    assert_eq!(status, 302);
    assert!(loc.unwrap().starts_with(&mirrors[0].url()));
}

#[tokio::test]
async fn in_proxy_mode_files_bound_for_the_fallback_are_proxied_from_it() {
    let origin = tempfile::tempdir().unwrap();
    let root = origin.path();
    let release = [3u8; 500];
    put(
        root,
        "dists/stable/Release",
        &release,
        Duration::from_secs(7200),
    );
    put(root, "tiny.txt", b"tiny", Duration::from_secs(7200));
    put(root, "releases/old.iso", OLD, Duration::from_secs(7200));
    // The origin's web server, and a mirror that has everything.
    let web = TreeMirror::start().await;
    web.put("dists/stable/Release", release.to_vec());
    web.put("tiny.txt", &b"tiny"[..]);
    let de = TreeMirror::start().await;
    de.put("project/trace/origin", trace(Duration::ZERO));
    de.put("dists/stable/Release", release.to_vec());
    de.put("tiny.txt", &b"tiny"[..]);
    de.put("releases/old.iso", OLD);
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\nmode: proxy\nfallback: {}\n\
         origin:\n  root: {}\n  settle: 1s\n  trace_file: project/trace/origin\n  never_redirect: [Release]\n  min_redirect_size: 100\n",
        web.url(),
        root.display()
    );
    let m = [M {
        name: "de",
        url: de.url(),
        cc: "DE",
        lat: 50.11,
        lon: 8.68,
        extra: "",
    }];
    let app = TestApp::start(&config_yaml(&m, &top)).await;
    app.wait_for("the origin index", |s| {
        s.content.lookup("releases/old.iso").is_some()
    })
    .await;
    for (path, body) in [
        ("dists/stable/Release", &release[..]),
        ("tiny.txt", &b"tiny"[..]),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/{path}")))
            .header("x-forwarded-for", DE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(&r.bytes().await.unwrap()[..], body, "{path}");
        assert_eq!(web.hits_of(path), 1, "{path} comes from the origin");
        assert_eq!(de.hits_of(path), 0, "{path} went to a mirror");
    }
    // Other files still come from the mirror.
    let r = app
        .http
        .get(app.url("/releases/old.iso"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], OLD);
    assert_eq!(de.hits_of("releases/old.iso"), 1);
}
