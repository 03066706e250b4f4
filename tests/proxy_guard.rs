//! Proxy mode against mirrors that misbehave: redirecting off themselves
//! (to mirrorgate's admin listener, to a foreign host), hanging past the
//! first-byte timeout, dying mid-body.

mod support;

use mirrorgate::health::HealthState;
use support::misbehaving::{HangingMirror, RedirectMirror};
use support::*;

/// A config where a client in Germany ranks `first` (de-fra) before `second` (us-nyc).
fn two(first: String, second: String, extra_top: &str) -> String {
    let ms = [
        M::de_fra(first),
        M {
            name: "us-nyc",
            url: second,
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        },
    ];
    config_yaml(&ms, &format!("{TRUSTED_MANUAL_PROBES}\n{extra_top}"))
}

fn get(t: &TestApp, path: &str) -> reqwest::RequestBuilder {
    t.http.get(t.url(path)).header("x-forwarded-for", DE)
}

/// The value of one series of the app's metrics (0 when absent).
fn metric(t: &TestApp, series: &str) -> f64 {
    t.app
        .metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_redirect_to_the_admin_listener_is_not_followed_and_the_next_mirror_serves() {
    let bad = RedirectMirror::start("http://invalid.example/").await;
    let good = BigMirror::start(5000).await;
    let t = TestApp::start(&two(bad.url(), good.url(), "mode: proxy")).await;
    let admin = t.admin("/api/v1/mirrors");
    bad.redirect_to(&admin);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    let body = r.bytes().await.unwrap();
    assert_eq!(
        body,
        expected(0, 5000),
        "the file, never the admin API's JSON"
    );
    assert_eq!(good.file_hits().len(), 1);
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"redirect_off_site\",mirror=\"de-fra\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_foreign_location_never_reaches_the_client_even_when_redirects_are_passed_on() {
    let bad = RedirectMirror::start("http://evil.example/pwn").await;
    let good = BigMirror::start(5000).await;
    let yaml = two(
        bad.url(),
        good.url(),
        "mode: proxy\nproxy:\n  follow_redirects: 0",
    );
    let t = TestApp::start(&yaml).await;
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    // A redirect on the same host but outside the mirror's base path is as foreign.
    let elsewhere = format!("http://{}/private/big.bin", bad.addr);
    bad.redirect_to(&elsewhere);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
}

#[tokio::test]
async fn with_only_a_foreign_redirect_the_client_gets_an_error_not_the_location() {
    let bad = RedirectMirror::start("http://evil.example/pwn").await;
    let ms = [M::de_fra(bad.url())];
    let yaml = config_yaml(
        &ms,
        &format!("{TRUSTED_MANUAL_PROBES}\nmode: proxy\nproxy:\n  follow_redirects: 0"),
    );
    let t = TestApp::start(&yaml).await;
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none());
    assert!(!r.text().await.unwrap().contains("evil.example"));
}

#[tokio::test]
async fn a_body_cut_short_with_no_mirror_to_resume_from_counts_as_a_proxy_error() {
    let len = 4 * 1024 * 1024;
    let only = BigMirror::start(len).await;
    let ms = [M::de_fra(only.url())];
    let yaml = config_yaml(
        &ms,
        &format!("{TRUSTED_MANUAL_PROBES}\nmode: proxy\nproxy:\n  passive_failures: false"),
    );
    let t = TestApp::start(&yaml).await;
    // A whole body first: counted as proxied.
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len() as u64, len);
    let proxied = "mirrorgate_requests_total{outcome=\"proxied\"}";
    let failed = "mirrorgate_requests_total{outcome=\"proxy_error\"}";
    poll_until("the whole body counted", || async {
        metric(&t, proxied) == 1.0
    })
    .await;

    // Far enough in that the head has left the mirror (an answer that dies
    // unsent on a reused connection is asked again, whole).
    only.die_once_after(1024 * 1024);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the headers had left before the mirror died"
    );
    let got = r.bytes().await;
    assert!(got.is_err(), "the client sees a short body");
    poll_until("the cut-short body counted as an error", || async {
        metric(&t, failed) == 1.0
    })
    .await;
    assert_eq!(metric(&t, proxied), 1.0, "not counted as proxied");
    assert_eq!(metric(&t, "mirrorgate_proxy_active_transfers"), 0.0);
}

#[tokio::test]
async fn a_mirror_whose_files_hang_stays_out_after_a_good_probe_round() {
    let hanging = HangingMirror::start().await;
    let good = BigMirror::start(5000).await;
    let ms = [
        M::de_fra(hanging.url()),
        M {
            name: "us-nyc",
            url: good.url(),
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        },
    ];
    let top = "trusted_proxies: [127.0.0.0/8]\nhealth:\n  interval: 1h\n  timeout: 2s\n  rise: 1\n  fall: 1\n\
               mode: proxy\nproxy:\n  first_byte_timeout: 300ms\n  passive_backoff: 1h";
    let t = TestApp::start(&config_yaml(&ms, top)).await;
    // The first request waits out the first-byte timeout, then fails over.
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    assert_eq!(hanging.file_hits(), 1);
    t.wait_state("de-fra", HealthState::Down).await;
    let snap = t.app.state().load_full();
    assert!(snap.mirror("de-fra").unwrap().health.held_until.is_some());
    // Operators see the hold, and its end, through the API.
    let view: serde_json::Value = serde_json::from_str(
        &reqwest::get(t.admin("/api/v1/mirrors/de-fra"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(view["held_until"].is_string(), "{view}");

    // Its probe path answers: a probe round succeeds, and with rise: 1
    // would bring it straight back.
    t.probe_round("de-fra").await;
    let snap = t.app.state().load_full();
    let e = snap.mirror("de-fra").unwrap();
    assert_eq!(
        e.health.state,
        HealthState::Down,
        "held out by the back-off"
    );

    // Later requests go straight to the next mirror: never to the hanging one.
    for _ in 0..3 {
        let r = get(&t, "/big.bin").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    }
    assert_eq!(hanging.file_hits(), 1, "no later request waited on it");
}

#[test]
fn the_passive_backoff_settings_are_checked() {
    use mirrorgate::config::Config;
    let load = |proxy: &str| {
        Config::from_yaml(
            &format!("fallback: http://o.example.org/\nproxy:\n{proxy}"),
            std::path::Path::new("."),
        )
    };
    let errs = load("  passive_backoff: 0s\n  passive_backoff_max: soon\n").unwrap_err();
    let places: Vec<&str> = errs.0.iter().map(|e| e.place.as_str()).collect();
    assert_eq!(
        places,
        ["proxy.passive_backoff", "proxy.passive_backoff_max"],
        "{errs}"
    );
    let errs = load("  passive_backoff: 5m\n  passive_backoff_max: 1m\n").unwrap_err();
    assert_eq!(errs.0[0].place, "proxy.passive_backoff_max", "{errs}");
    // A base above the default maximum raises the maximum with it.
    let c = load("  passive_backoff: 20m\n").unwrap();
    assert_eq!(
        c.proxy.passive_backoff_max,
        std::time::Duration::from_secs(1200)
    );
    let c = load("").unwrap();
    assert_eq!(c.proxy.passive_backoff, std::time::Duration::from_secs(30));
    assert_eq!(
        c.proxy.passive_backoff_max,
        std::time::Duration::from_secs(600)
    );
}

#[tokio::test]
async fn a_mirror_at_mirrorgates_own_address_is_a_failed_attempt_never_connected_to() {
    use mirrorgate::app::{App, StartOptions};
    use mirrorgate::config::Config;
    let good = BigMirror::start(5000).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirrorgate.yaml");
    let top = format!("{TRUSTED_MANUAL_PROBES}\nmode: proxy");
    let first = config_yaml(
        &[M {
            name: "us-nyc",
            url: good.url(),
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        }],
        &top,
    );
    std::fs::write(&path, &first).unwrap();
    let config = Config::from_yaml(&first, dir.path()).unwrap();
    let opts = StartOptions {
        config_path: Some(path.clone()),
        ..StartOptions::default()
    };
    let app = App::start(config, opts).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let t = TestApp { app, http };
    t.wait_for("readiness", |s| s.ready).await;
    // Now a mirror at the admin listener, near the client, whose probe path
    // (/livez) answers: up, and ranked first.
    let own = format!("http://{}/", t.app.admin_addr());
    let yaml = two(own, good.url(), "mode: proxy").replace(
        "    country: DE\n",
        "    country: DE\n    probe_path: livez\n",
    );
    std::fs::write(&path, yaml).unwrap();
    t.app.reload().await.unwrap();
    t.wait_state("de-fra", HealthState::Up).await;
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"self_address\",mirror=\"de-fra\"}"
        ),
        1.0
    );
}
