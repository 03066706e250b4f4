//! End to end: the real app on loopback, fake mirrors, clients placed by the
//! demo GeoIP database through X-Forwarded-For from a trusted loopback proxy.

mod support;

use std::collections::HashMap;

use mirrorgate::health::HealthState;
use support::*;

struct World {
    app: TestApp,
    mirrors: Vec<FakeMirror>,
}

const SITES: [(&str, &str, f64, f64); 6] = [
    ("de-fra", "DE", 50.11, 8.68),
    ("us-nyc", "US", 40.71, -74.01),
    ("br-sao", "BR", -23.55, -46.63),
    ("jp-tyo", "JP", 35.68, 139.69),
    ("au-syd", "AU", -33.87, 151.21),
    ("za-jnb", "ZA", -26.20, 28.05),
];

async fn world_with(extra_top: &str, extra: impl Fn(&str) -> &'static str) -> World {
    let (mirrors, ms) = mirrors_at(&SITES, extra).await;
    let app = TestApp::start(&config_yaml(&ms, extra_top)).await;
    World { app, mirrors }
}

async fn world() -> World {
    world_with(TRUSTED_MANUAL_PROBES, |_| "").await
}

impl World {
    fn url_of(&self, name: &str) -> String {
        let i = SITES.iter().position(|s| s.0 == name).unwrap();
        self.mirrors[i].url()
    }

    /// Which mirror a redirect went to.
    fn mirror_of(&self, location: &str) -> &'static str {
        for (i, (name, ..)) in SITES.iter().enumerate() {
            if location.starts_with(&self.mirrors[i].url()) {
                return name;
            }
        }
        panic!("redirect to an unknown place: {location}")
    }

    /// The published health state of a mirror.
    fn state_of(&self, name: &str) -> HealthState {
        self.app
            .app
            .state()
            .load()
            .mirror(name)
            .unwrap()
            .health
            .state
    }

    /// Makes every mirror fail two probe rounds (fall = 2) and waits until all are down.
    async fn all_down(&self) {
        for m in &self.mirrors {
            m.set_status(500);
        }
        for _ in 0..2 {
            self.app.probe_round("za-jnb").await;
        }
        self.app
            .wait_for("every mirror down", |s| {
                s.mirrors
                    .iter()
                    .all(|e| e.health.state == HealthState::Down)
            })
            .await;
    }

    async fn chosen(&self, ip: &str) -> &'static str {
        let (status, loc) = self.app.get_from(ip, "/releases/1.0/demo.iso").await;
        assert_eq!(status, 302, "from {ip}");
        self.mirror_of(&loc.unwrap())
    }
}

#[tokio::test]
async fn clients_reach_their_nearest_mirror() {
    let w = world().await;
    for (ip, want) in [
        (DE, "de-fra"),
        (FR, "de-fra"),
        (US, "us-nyc"),
        (BR, "br-sao"),
        (JP, "jp-tyo"),
        (AU, "au-syd"),
        (ZA, "za-jnb"),
    ] {
        for _ in 0..5 {
            assert_eq!(w.chosen(ip).await, want, "client {ip}");
        }
    }
}

#[tokio::test]
async fn redirect_carries_path_links_and_cache_headers() {
    let w = world().await;
    let r = w
        .app
        .http
        .get(w.app.url("/releases//1.0/./my%20file.iso?x=1"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap();
    assert_eq!(
        loc,
        format!("{}releases/1.0/my%20file.iso", w.url_of("de-fra")),
        "query dropped, path normalised"
    );
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let links: Vec<&str> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        links.len(),
        5,
        "one Link line per alternative, then the Metalink: {links:?}"
    );
    assert_eq!(
        links[4],
        "</releases/1.0/my%20file.iso?meta4>; rel=describedby; type=\"application/metalink4+xml\""
    );
    assert!(
        links[0].starts_with('<') && links[0].contains("; rel=duplicate; pri=1; geo="),
        "{}",
        links[0]
    );
    assert!(
        links.iter().all(|l| !l.contains(&w.url_of("de-fra"))),
        "the chosen mirror is not its own duplicate"
    );
    // HEAD answers the same.
    let h = w
        .app
        .http
        .head(w.app.url("/releases/1.0/demo.iso"))
        .header("x-forwarded-for", JP)
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 302);
    assert!(h.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&w.url_of("jp-tyo")));
}

#[tokio::test]
async fn configured_redirect_status_is_used() {
    let w = world_with(
        &format!("{TRUSTED_MANUAL_PROBES}\nredirect_status: 307"),
        |_| "",
    )
    .await;
    let r = w
        .app
        .http
        .get(w.app.url("/a"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
}

#[tokio::test]
async fn failing_mirror_leaves_after_fall_and_returns_after_rise() {
    let w = world().await;
    assert_eq!(w.chosen(DE).await, "de-fra");
    w.mirrors[0].set_status(503);
    // fall = 2: one failed probe keeps it up...
    w.app.probe_round("de-fra").await;
    assert_eq!(w.state_of("de-fra"), HealthState::Up);
    assert_eq!(w.chosen(DE).await, "de-fra");
    // ...the second takes it out.
    w.app.probe_round("de-fra").await;
    w.app.wait_state("de-fra", HealthState::Down).await;
    for _ in 0..10 {
        assert_ne!(w.chosen(DE).await, "de-fra");
    }
    let snap = w.app.app.state().load_full();
    let reason = snap
        .mirror("de-fra")
        .unwrap()
        .health
        .last_failure
        .clone()
        .unwrap();
    assert_eq!(reason.to_string(), "HTTP status 503");
    // rise = 2: back after two good probes, not one.
    w.mirrors[0].set_status(200);
    w.app.probe_round("de-fra").await;
    assert_eq!(w.state_of("de-fra"), HealthState::Down);
    w.app.probe_round("de-fra").await;
    w.app.wait_state("de-fra", HealthState::Up).await;
    assert_eq!(w.chosen(DE).await, "de-fra");
}

#[tokio::test]
async fn country_restricted_mirror_never_serves_others() {
    let w = world_with(TRUSTED_MANUAL_PROBES, |name| {
        if name == "de-fra" {
            "countries_only: [DE]"
        } else {
            ""
        }
    })
    .await;
    assert_eq!(w.chosen(DE).await, "de-fra");
    for ip in [FR, US, JP, NO_RECORD, "10.9.8.7"] {
        for _ in 0..20 {
            assert_ne!(w.chosen(ip).await, "de-fra", "client {ip}");
        }
    }
}

#[tokio::test]
async fn unknown_client_is_spread_over_all() {
    let w = world().await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for _ in 0..600 {
        *seen.entry(w.chosen(NO_RECORD).await).or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        SITES.len(),
        "every mirror gets unknown clients: {seen:?}"
    );
    for (name, n) in &seen {
        // Equal weights: 100 each expected; a wide margin keeps this from flaking.
        assert!((40..=180).contains(n), "{name} got {n} of 600");
    }
}

#[tokio::test]
async fn no_eligible_mirror_gives_fallback_or_503() {
    let w = world_with(
        &format!("{TRUSTED_MANUAL_PROBES}\nfallback: https://origin.example.org/pub/"),
        |_| "",
    )
    .await;
    w.all_down().await;
    let (status, loc) = w.app.get_from(DE, "/releases/a%20b.iso").await;
    assert_eq!(
        (status, loc.as_deref()),
        (
            302,
            Some("https://origin.example.org/pub/releases/a%20b.iso")
        )
    );

    let w = world().await;
    w.all_down().await;
    let r = w
        .app
        .http
        .get(w.app.url("/x.iso"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("no mirror"));
}

#[tokio::test]
async fn untrusted_forwarded_for_is_ignored() {
    // Loopback is not a trusted proxy here: the header is the client's own claim.
    let w = world_with("health:\n  interval: 1h", |name| {
        if name == "de-fra" {
            "countries_only: [DE]"
        } else {
            ""
        }
    })
    .await;
    for _ in 0..30 {
        assert_ne!(w.chosen(DE).await, "de-fra");
    }
}

#[tokio::test]
async fn traversal_and_bad_paths_get_400() {
    let w = world().await;
    let addr = w.app.app.public_addr();
    for path in [
        "/../etc/passwd",
        "/a/../../b",
        "/%2e%2e/x",
        "/a/%2E%2E/b",
        "/a%00b",
        "/a%5c..%5cb",
        "/a%FF",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        assert_eq!(raw_status(addr, &req).await, 400, "{path}");
    }
    let long = format!("/{}", "a".repeat(5000));
    let req = format!("GET {long} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(raw_status(addr, &req).await, 400);
    let req = "POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    assert_eq!(raw_status(addr, req).await, 405);
}
