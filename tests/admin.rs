//! The admin listener: metrics (checked by promtool), health JSON, readiness, token.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

async fn one_mirror_app() -> (TestApp, FakeMirror) {
    app_with("").await
}

/// The app with `admin_more` (lines indented under `admin:`).
async fn app_with(admin_more: &str) -> (TestApp, FakeMirror) {
    let m = FakeMirror::start().await;
    let yaml = config_yaml(
        &[M::de_fra(m.url())],
        // The admin section is the last of these: its keys go on.
        &format!("{TRUSTED_MANUAL_PROBES}\n{admin_more}"),
    );
    (TestApp::start(&yaml).await, m)
}

/// `promtool` must be there under CI; elsewhere a missing one is said out loud.
fn promtool() -> Option<&'static str> {
    if Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return Some("promtool");
    }
    if std::env::var_os("CI").is_some() {
        panic!("promtool is not installed; CI must install Debian's 'prometheus' package (see .ci/run)");
    }
    eprintln!("NOTE: promtool not installed: the exposition-format check is NOT run (apt-get install prometheus)");
    None
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_requests() {
    let (t, _m) = one_mirror_app().await;
    t.get_from(DE, "/a.iso").await;
    t.get_from(NO_RECORD, "/a.iso").await;
    let raw = "GET /../x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    assert_eq!(raw_status(t.app.public_addr(), raw).await, 400);
    let body = t.get_text(t.admin("/metrics")).await;
    for want in [
        "mirrorgate_requests_total{outcome=\"redirect\"} 2",
        "mirrorgate_requests_total{outcome=\"bad_request\"} 1",
        "mirrorgate_redirects_total{mirror=\"de-fra\"} 2",
        "mirrorgate_mirror_up{mirror=\"de-fra\"} 1",
        "mirrorgate_geoip_lookups_total{result=\"found\"} 1",
        "mirrorgate_geoip_lookups_total{result=\"unknown\"} 1",
        "mirrorgate_probes_total{mirror=\"de-fra\",result=\"ok\"}",
        "mirrorgate_probe_duration_seconds_bucket{mirror=\"de-fra\"",
        "mirrorgate_request_duration_seconds_count 3",
        "mirrorgate_build_info{version=",
        "mirrorgate_ready 1",
    ] {
        assert!(body.contains(want), "missing {want:?} in\n{body}");
    }
    assert!(!body.contains("192.0.2"), "no client address in metrics");
    assert!(!body.contains("a.iso"), "no path in metrics");
    if let Some(tool) = promtool() {
        let mut child = Command::new(tool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn health_api_livez_readyz() {
    let (t, _m) = one_mirror_app().await;
    assert_eq!(t.admin_status("/livez").await, 200);
    assert_eq!(t.admin_status("/readyz").await, 200);
    let v: serde_json::Value = t.admin_json("/api/v1/mirrors").await;
    let m = &v["mirrors"][0];
    assert_eq!(m["name"], "de-fra");
    assert_eq!(m["state"], "up");
    assert!(m["rtt_ms"].as_f64().unwrap() >= 0.0);
    assert!(m["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["last_failure"], serde_json::Value::Null);
    assert_eq!(m["country"], "DE");
    let one = t
        .http
        .get(t.admin("/api/v1/mirrors/de-fra"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(t.admin_status("/api/v1/mirrors/nope").await, 404);
    let ex: serde_json::Value = t
        .admin_json(&format!("/api/v1/explain?ip={DE}&path=/a.iso"))
        .await;
    assert_eq!(ex["country"], "DE");
    assert_eq!(ex["outcome"], "redirect");
    assert_eq!(ex["mirrors"][0]["rank"], 1);
}

#[tokio::test]
async fn failure_reason_is_reported() {
    let (t, m) = one_mirror_app().await;
    m.set_status(502);
    t.probe_round("de-fra").await;
    let v: serde_json::Value = t.admin_json("/api/v1/mirrors/de-fra").await;
    assert_eq!(v["last_failure"], "HTTP status 502");
    assert_eq!(v["last_failure_reason"], "http_status");
}

#[tokio::test]
async fn writes_need_the_token() {
    let (t, _m) = one_mirror_app().await;
    assert_eq!(
        t.http
            .post(t.admin("/api/v1/probe"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        t.http
            .post(t.admin("/api/v1/probe"))
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        t.http
            .post(t.admin("/api/v1/probe"))
            .bearer_auth("test-token-0123456789")
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
}

#[tokio::test]
async fn readyz_waits_for_the_first_probe_round() {
    // A mirror that accepts connections and never answers: its first probe
    // ends only at the probe timeout, and readiness must wait for it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let yaml = config_yaml(
        &[M {
            name: "slow",
            url: format!("http://{addr}/pub/"),
            cc: "DE",
            lat: 50.0,
            lon: 8.0,
            extra: "",
        }],
        "health:\n  interval: 1h\n  timeout: 1s",
    );
    let config = mirrorgate::config::Config::from_yaml(&yaml, std::path::Path::new(".")).unwrap();
    let app = mirrorgate::app::App::start(config, Default::default())
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let readyz = format!("http://{}/readyz", app.admin_addr());
    assert_eq!(http.get(&readyz).send().await.unwrap().status(), 503);
    let mut rx = app.state().watch();
    within("the first probe round", async {
        while !app.state().load().ready {
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert_eq!(http.get(&readyz).send().await.unwrap().status(), 200);
    let snap = app.state().load_full();
    let slow = snap.mirror("slow").unwrap();
    assert_eq!(
        slow.health.last_failure.as_ref().map(|r| r.as_str()),
        Some("timeout")
    );
    drop(silent);
}

#[tokio::test]
async fn slow_admin_connections_are_closed_at_the_header_timeout() {
    let (t, _m) = app_with("  header_timeout: 500ms").await;
    let addr = t.app.admin_addr();
    // 200, past the cap of 64: the later ones wait for a place, and each
    // is closed half a second after it got one.
    let drips: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(support::slow::drip_until_closed(
                addr,
                "GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Drip: ",
                std::time::Duration::from_millis(100),
            ))
        })
        .collect();
    for d in drips {
        d.await.unwrap();
    }
    // Served as before.
    assert_eq!(t.admin_status("/livez").await, 200);
}

#[tokio::test]
async fn the_admin_listener_serves_at_most_max_connections() {
    let (t, _m) = app_with("  max_connections: 2").await;
    let addr = t.app.admin_addr();
    let livez = "GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n";
    // Two kept-alive connections hold both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = RawConn::connect(addr).await;
        c.send(livez.as_bytes()).await;
        assert_eq!(c.response(false).await.status, 200);
        held.push(c);
    }
    let mut third = RawConn::connect(addr).await;
    third.send(livez.as_bytes()).await;
    // No answer while they hold them (a bounded look, not a wait for an event).
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), third.response(false));
    assert!(
        early.await.is_err(),
        "a third connection was served past the cap"
    );
    // One lets go: the third is served.
    drop(held.pop());
    assert_eq!(third.response(false).await.status, 200);
}

#[tokio::test]
async fn an_oversized_admin_head_gets_431_unparsed() {
    let (t, _m) = one_mirror_app().await;
    let addr = t.app.admin_addr();
    // 400 KB of Authorization: refused before it is read, let alone checked.
    let mut c = RawConn::connect(addr).await;
    let head = format!(
        "POST /api/v1/probe HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(400 * 1000)
    );
    c.send_until_closed(head.as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 431, "{}", r.text());
    c.closed().await;
    // A head within 16 KiB is read and checked: a wrong token.
    let mut c = RawConn::connect(addr).await;
    let head = format!(
        "POST /api/v1/probe HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(8 * 1024)
    );
    c.send(head.as_bytes()).await;
    assert_eq!(c.response(false).await.status, 403);
}

#[tokio::test]
async fn an_admin_client_that_never_reads_is_closed_at_the_send_timeout() {
    // `limits:` after the admin section's lines: a key of its own.
    let (t, _m) = app_with("limits:\n  send_timeout: 300ms").await;
    let mut s = support::slow::connect_small_buffer(t.app.admin_addr()).await;
    // Pipelined requests whose answers (megabytes) are never read: the
    // server's writes stall, it stops reading, and then ours stall too,
    // until it gives up on the client and they fail.
    let all = "GET /livez HTTP/1.1\r\nHost: admin\r\n\r\n".repeat(20_000);
    within("the admin listener to end the connection", async {
        use tokio::io::AsyncWriteExt;
        while s.write_all(all.as_bytes()).await.is_ok() {}
    })
    .await;
    support::slow::drained_to_the_end(&mut s).await;
}
