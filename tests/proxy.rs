//! Proxy mode end to end: the real app on loopback in front of fake mirrors
//! that serve a large generated file, fail on demand, or die mid-body.

mod support;

use std::path::Path;

use mirrorgate::config::{Config, DeliveryMode};
use mirrorgate::health::HealthState;
use support::*;

const MIB: u64 = 1024 * 1024;

/// The memory test measures this process's resident memory: it runs alone
/// (write), the other tests of this file beside each other (read).
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Mirrors in the order a client in Germany ranks them.
const PLACES: [(&str, &str, f64, f64); 4] = [
    ("de-fra", "DE", 50.11, 8.68),
    ("us-nyc", "US", 40.71, -74.01),
    ("za-jnb", "ZA", -26.20, 28.05),
    ("jp-tyo", "JP", 35.68, 139.69),
];

async fn world(n: usize, len: u64, extra_top: &str) -> (TestApp, Vec<BigMirror>) {
    let mut mirrors = Vec::new();
    for _ in 0..n {
        mirrors.push(BigMirror::start(len).await);
    }
    let ms: Vec<M> = PLACES
        .iter()
        .zip(&mirrors)
        .map(|((name, cc, lat, lon), m)| M {
            name,
            url: m.url(),
            cc,
            lat: *lat,
            lon: *lon,
            extra: "",
        })
        .collect();
    let top = format!("{TRUSTED_MANUAL_PROBES}\n{extra_top}");
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    (app, mirrors)
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

fn get(t: &TestApp, path: &str) -> reqwest::RequestBuilder {
    t.http.get(t.url(path)).header("x-forwarded-for", DE)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_proxied_download_is_byte_identical_with_clean_headers() {
    let _shared = ALONE.read().await;
    let len = 3 * MIB + 12_345;
    let (t, m) = world(2, len, "mode: proxy").await;
    let r = get(&t, "/big.bin")
        .header("cookie", "session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), Some(len.to_string().as_str()));
    assert_eq!(header(&r, "etag"), Some("\"big-v1\""));
    assert_eq!(header(&r, "via"), Some("1.1 mirrorgate"));
    assert_eq!(
        header(&r, "keep-alive"),
        None,
        "hop-by-hop header passed on"
    );
    assert_eq!(
        header(&r, "set-cookie"),
        None,
        "a mirror's cookie passed on"
    );
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(matches_file(0, &body), "the body differs from the file");
    assert_eq!(m[0].file_hits(), [None], "the nearest mirror serves");
    assert!(m[1].file_hits().is_empty());

    let up = m[0].last_headers().unwrap();
    assert_eq!(up["via"], "1.1 mirrorgate");
    assert_eq!(up["x-forwarded-for"], DE);
    assert!(
        up.get("cookie").is_none(),
        "a client cookie reached a mirror"
    );

    let r = t
        .http
        .head(t.url("/big.bin"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), Some(len.to_string().as_str()));
    assert!(r.bytes().await.unwrap().is_empty());

    assert_eq!(
        metric(&t, "mirrorgate_proxy_bytes_total{mirror=\"de-fra\"}"),
        len as f64
    );
    assert_eq!(
        metric(&t, "mirrorgate_requests_total{outcome=\"proxied\"}"),
        2.0
    );
    assert_eq!(metric(&t, "mirrorgate_proxy_first_byte_seconds_count"), 2.0);
    assert_eq!(metric(&t, "mirrorgate_proxy_active_transfers"), 0.0);
}

#[tokio::test]
async fn downloads_one_after_another_reuse_one_connection_to_the_mirror() {
    let _shared = ALONE.read().await;
    let len = 64 * 1024 + 7;
    let (t, m) = world(1, len, "mode: proxy").await;
    let fetch = || async {
        let r = get(&t, "/big.bin").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len() as u64, len);
        assert!(matches_file(0, &body), "the body differs from the file");
    };
    fetch().await;
    let opened = m[0].connections();
    for _ in 0..5 {
        fetch().await;
    }
    // An answer without a body gives its connection back too.
    let r = t
        .http
        .head(t.url("/big.bin"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    fetch().await;
    assert_eq!(
        m[0].connections(),
        opened,
        "a proxied request opened another connection to the mirror"
    );
    let up = m[0].last_headers().unwrap();
    assert_eq!(up["host"], m[0].addr.to_string().as_str());
}

#[tokio::test]
async fn idle_connections_to_a_mirror_close_after_the_idle_connection_timeout() {
    let _shared = ALONE.read().await;
    let len = 64 * 1024;
    let (t, m) = world(
        1,
        len,
        "mode: proxy\nproxy:\n  idle_connection_timeout: 200ms",
    )
    .await;
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len() as u64, len);
    assert!(m[0].connections() >= 1);
    // Probes keep no connection; the pool keeps its idle one for 200 ms
    // (the default would keep it for a minute, past the test's deadline).
    m[0].all_closed().await;
}

#[tokio::test]
async fn ranges_and_conditions_pass_through() {
    let _shared = ALONE.read().await;
    let len = 2 * MIB + 7;
    let (t, _m) = world(1, len, "mode: proxy").await;

    let r = get(&t, "/big.bin")
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        Some(format!("bytes 1000-1999/{len}").as_str())
    );
    assert_eq!(header(&r, "content-length"), Some("1000"));
    assert_eq!(r.bytes().await.unwrap(), expected(1000, 1000));

    let r = get(&t, "/big.bin")
        .header("range", "bytes=-500")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let from = len - 500;
    assert_eq!(
        header(&r, "content-range"),
        Some(format!("bytes {from}-{}/{len}", len - 1).as_str())
    );
    assert_eq!(r.bytes().await.unwrap(), expected(from, 500));

    let r = get(&t, "/big.bin")
        .header("range", "bytes=0-9,100000-100009")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("multipart/byteranges"));
    let body = r.bytes().await.unwrap();
    for (a, part) in [(0, expected(0, 10)), (100_000, expected(100_000, 10))] {
        let head = format!("Content-Range: bytes {a}-{}/{len}\r\n\r\n", a + 9);
        let at = find(&body, head.as_bytes()).expect("part present") + head.len();
        assert_eq!(&body[at..at + 10], &part[..]);
    }

    // If-Range with another validator: the whole file, as the mirror says.
    let r = get(&t, "/big.bin")
        .header("range", "bytes=10-19")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len() as u64, len);

    let r = get(&t, "/big.bin")
        .header("if-none-match", "\"big-v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = get(&t, "/big.bin")
        .header("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = get(&t, "/big.bin")
        .header("range", format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn failing_mirrors_are_skipped_and_the_client_gets_one_clean_answer() {
    let _shared = ALONE.read().await;
    let len = MIB + 1;
    let (t, m) = world(
        4,
        len,
        "mode: proxy\nproxy:\n  max_attempts: 4\n  first_byte_timeout: 300ms\n  passive_failures: false",
    )
    .await;
    m[0].refuse();
    m[1].set_status(500);
    m[2].set_hang(true);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() as u64 == len && matches_file(0, &body));
    assert_eq!(m[3].file_hits().len(), 1);
    let errors = |mirror: &str, kind: &str| {
        metric(
            &t,
            &format!(
                "mirrorgate_proxy_upstream_errors_total{{kind=\"{kind}\",mirror=\"{mirror}\"}}"
            ),
        )
    };
    assert_eq!(errors("de-fra", "connect_refused"), 1.0);
    assert_eq!(errors("us-nyc", "http_5xx"), 1.0);
    assert_eq!(errors("za-jnb", "timeout"), 1.0);
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_failovers_total{phase=\"before_body\"}"
        ),
        3.0
    );

    // Mirrors that all fail give a 502.
    m[2].set_hang(false);
    m[2].set_status(503);
    m[3].set_status(500);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        metric(&t, "mirrorgate_requests_total{outcome=\"proxy_error\"}"),
        1.0
    );
}

#[tokio::test]
async fn the_fallback_is_the_last_resort_of_a_proxied_request() {
    let _shared = ALONE.read().await;
    let len = 200_000;
    let origin = BigMirror::start(len).await;
    let top = format!(
        "mode: proxy\nfallback: {}\nproxy:\n  passive_failures: false",
        origin.url()
    );
    let (t, m) = world(1, len, &top).await;

    // The only mirror fails: the origin serves after it.
    m[0].set_status(500);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.len() as u64 == len && matches_file(0, &body));
    assert_eq!(m[0].file_hits().len(), 1);
    assert_eq!(origin.file_hits().len(), 1);
    assert_eq!(
        metric(&t, "mirrorgate_proxy_bytes_total{mirror=\"(fallback)\"}"),
        len as f64
    );
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"http_5xx\",mirror=\"de-fra\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_failovers_total{phase=\"before_body\"}"
        ),
        1.0
    );
    // Both failing: one clean 502, both failures counted.
    origin.set_status(500);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"http_5xx\",mirror=\"(fallback)\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn with_no_mirror_for_the_client_a_proxied_file_comes_from_the_fallback() {
    let _shared = ALONE.read().await;
    let len = 100_000;
    let origin = BigMirror::start(len).await;
    let jp = BigMirror::start(len).await;
    let mirrors = [M {
        name: "jp-tyo",
        url: jp.url(),
        cc: "JP",
        lat: 35.68,
        lon: 139.69,
        extra: "countries_only: [JP]",
    }];
    for (mode, status) in [("proxy", 200), ("redirect", 302)] {
        let top = format!(
            "{TRUSTED_MANUAL_PROBES}\nmode: {mode}\nfallback: {}",
            origin.url()
        );
        let t = TestApp::start(&config_yaml(&mirrors, &top)).await;
        let r = get(&t, "/big.bin").send().await.unwrap();
        assert_eq!(r.status(), status, "mode {mode}");
        if mode == "proxy" {
            let body = r.bytes().await.unwrap();
            assert!(body.len() as u64 == len && matches_file(0, &body));
        } else {
            assert_eq!(
                header(&r, "location"),
                Some(format!("{}big.bin", origin.url()).as_str())
            );
        }
    }
    assert_eq!(origin.file_hits().len(), 1, "proxied once, redirected once");
    assert!(jp.file_hits().is_empty(), "a mirror not allowed was used");
}

#[tokio::test]
async fn a_mirror_dying_mid_body_closes_the_connection_and_the_client_resumes() {
    let _shared = ALONE.read().await;
    let len = 4 * MIB + 3;
    let (t, m) = world(2, len, "mode: proxy\nproxy:\n  passive_failures: false").await;
    // The second mirror holds another copy: mirrorgate must not splice it in.
    m[1].set_validators("\"big-v2\"", "Wed, 15 Nov 2023 22:13:20 GMT");
    m[0].die_once_after(MIB);
    let mut r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut got = Vec::new();
    let broke = loop {
        match r.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broke, "a short body must end with a broken connection");
    assert!((got.len() as u64) < len && matches_file(0, &got));
    assert_eq!(
        m[1].file_hits().len(),
        1,
        "a resume was tried on the next mirror"
    );

    let r = get(&t, "/big.bin")
        .header("range", format!("bytes={}-", got.len()))
        .header("if-range", "\"big-v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let rest = r.bytes().await.unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got.len() as u64, len);
    assert!(
        matches_file(0, &got),
        "the resumed download differs from the file"
    );
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"mismatch\",mirror=\"us-nyc\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn mirrorgate_resumes_on_the_next_mirror_when_validators_match() {
    let _shared = ALONE.read().await;
    let len = 4 * MIB + 3;
    let (t, m) = world(2, len, "mode: proxy").await;
    m[0].die_once_after(MIB);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(matches_file(0, &body));
    // The rest came from the next mirror, from wherever the first one's
    // bytes stopped arriving (it may have sent more than got through).
    let from = resumed_from(&m[1].file_hits()[0], len);
    assert!(from > 0 && from <= MIB, "resumed from {from}");
    assert_eq!(
        metric(&t, "mirrorgate_proxy_failovers_total{phase=\"mid_body\"}"),
        1.0
    );

    // The same inside a client's own range.
    m[0].die_once_after(MIB);
    let r = get(&t, "/big.bin")
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, len - 100);
    assert!(matches_file(100, &body));
    let from = resumed_from(&m[1].file_hits()[1], len);
    assert!(from > 100 && from <= 100 + MIB, "resumed from {from}");
}

#[tokio::test]
async fn a_mirror_that_stalls_mid_body_is_left_after_the_idle_timeout() {
    let _shared = ALONE.read().await;
    let len = 2 * MIB;
    let (t, m) = world(2, len, "mode: proxy\nproxy:\n  idle_timeout: 300ms").await;
    m[0].stall_once_after(MIB / 2);
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, len);
    assert!(matches_file(0, &body));
    assert_eq!(
        metric(
            &t,
            "mirrorgate_proxy_upstream_errors_total{kind=\"idle\",mirror=\"de-fra\"}"
        ),
        1.0
    );
    assert_eq!(m[1].file_hits().len(), 1);
}

/// N of a `bytes=N-{len-1}` Range header.
fn resumed_from(range: &Option<String>, len: u64) -> u64 {
    let r = range.as_deref().expect("a Range request");
    let suffix = format!("-{}", len - 1);
    r.strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix(suffix.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Range {r}"))
}

/// Resident memory of this process (app, mirror and client together), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn memory_stays_bounded_while_a_slow_client_downloads_a_large_file() {
    let _alone = ALONE.write().await;
    let len = 256 * MIB;
    let (t, m) = world(1, len, "mode: proxy").await;
    let before = rss_kib();
    let mut r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (mut got, mut max_ahead, mut max_rss, mut next_pause) = (0u64, 0u64, before, 0u64);
    while let Some(chunk) = r.chunk().await.unwrap() {
        assert!(matches_file(got, &chunk), "wrong bytes at {got}");
        got += chunk.len() as u64;
        // How far the mirror got ahead of the client: what is buffered in between.
        max_ahead = max_ahead.max(m[0].produced() - got);
        if got >= next_pause {
            next_pause += 4 * MIB;
            max_rss = max_rss.max(rss_kib());
            // The client is slow on purpose: the mirror must wait for it,
            // not have its bytes piled up in memory.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    }
    assert_eq!(got, len);
    let grown_mib = (max_rss - before) / 1024;
    assert!(grown_mib <= 64, "resident memory grew by {grown_mib} MiB");
    assert!(
        max_ahead <= 64 * MIB,
        "the mirror got {} MiB ahead of the client",
        max_ahead / MIB
    );
    eprintln!(
        "NOTE: 256 MiB proxied; resident memory grew by {grown_mib} MiB, the mirror was at most {} MiB ahead",
        max_ahead / MIB
    );
}

#[tokio::test]
async fn failures_of_proxied_traffic_take_a_mirror_out_until_probes_bring_it_back() {
    let _shared = ALONE.read().await;
    // A hold shorter than any probe round: the probes below come after it
    // (holding a mirror out is tests/proxy_guard.rs's).
    let (t, m) = world(2, 1000, "mode: proxy\nproxy:\n  passive_backoff: 1ms").await;
    m[0].set_status(500);
    for _ in 0..2 {
        let r = get(&t, "/big.bin").send().await.unwrap();
        assert_eq!(r.status(), 200, "the next mirror answers");
        assert_eq!(r.bytes().await.unwrap(), expected(0, 1000));
    }
    // fall: 2 failed proxied requests, and no probe round in between.
    t.wait_state("de-fra", HealthState::Down).await;
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        m[0].file_hits().len(),
        2,
        "a mirror that is down gets no traffic"
    );

    m[0].set_status(0);
    t.probe_round("de-fra").await;
    t.probe_round("de-fra").await;
    t.wait_state("de-fra", HealthState::Up).await;
}

#[tokio::test]
async fn passive_failures_can_be_turned_off() {
    let _shared = ALONE.read().await;
    let (t, m) = world(2, 1000, "mode: proxy\nproxy:\n  passive_failures: false").await;
    m[0].set_status(500);
    for _ in 0..3 {
        assert_eq!(get(&t, "/big.bin").send().await.unwrap().status(), 200);
    }
    let snap = t.app.state().load_full();
    let de = snap.mirror("de-fra").unwrap();
    assert_eq!(de.health.state, HealthState::Up);
    assert_eq!(de.health.last_failure, None);
}

#[tokio::test]
async fn auto_mode_rules_and_redirects_of_mirrors() {
    let _shared = ALONE.read().await;
    let (t, m) = world(
        1,
        5000,
        "mode: auto\nrules:\n  - { pattern: \"*.iso\", mode: redirect }\n  - { pattern: \"repodata/*\", mode: proxy }",
    )
    .await;
    // Without an origin index the size is unknown: redirected unless asked.
    let r = get(&t, "/big.bin").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let r = get(&t, "/big.bin?proxy").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    let r = get(&t, "/big.bin")
        .header("x-no-redirect", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A rule wins over what the client asks.
    let r = get(&t, "/x.iso?proxy").send().await.unwrap();
    assert_eq!(r.status(), 302);
    // repodata/* is always proxied (this mirror has no such file).
    let r = get(&t, "/repodata/repomd.xml").send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A mirror's redirect is followed.
    let r = get(&t, "/moved.bin?proxy").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), expected(0, 5000));
    drop(m);
}

#[tokio::test]
async fn a_mirrors_redirect_can_be_passed_on() {
    let _shared = ALONE.read().await;
    let (t, m) = world(1, 5000, "mode: proxy\nproxy:\n  follow_redirects: 0").await;
    let r = get(&t, "/moved.bin").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let want = format!("{}big.bin", m[0].url());
    assert_eq!(header(&r, "location"), Some(want.as_str()), "made absolute");
}

#[test]
fn the_example_config_documents_proxy_mode() {
    let c = Config::load(&repo_path("config/mirrorgate.example.yaml")).unwrap();
    assert_eq!(c.mode, DeliveryMode::Redirect);
    let rules: Vec<(&str, DeliveryMode)> = c
        .rules
        .iter()
        .map(|r| (r.pattern.as_str(), r.mode))
        .collect();
    assert_eq!(
        rules,
        [
            ("*.iso", DeliveryMode::Redirect),
            ("repodata/*", DeliveryMode::Proxy)
        ]
    );
    assert_eq!(
        c.mode_for("pub/repodata/repomd.xml"),
        DeliveryMode::Redirect
    );
    assert_eq!(c.mode_for("repodata/repomd.xml"), DeliveryMode::Proxy);
    assert_eq!(c.mode_for("releases/a.iso"), DeliveryMode::Redirect);
    let p = &c.proxy;
    assert_eq!(p.connect_timeout, std::time::Duration::from_secs(2));
    assert_eq!(p.first_byte_timeout, std::time::Duration::from_secs(10));
    assert_eq!(p.idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(p.max_total_time, std::time::Duration::from_secs(20));
    assert_eq!((p.max_attempts, p.follow_redirects), (3, 3));
    assert!(p.passive_failures);
    assert_eq!(p.passive_backoff, std::time::Duration::from_secs(30));
    assert_eq!(p.passive_backoff_max, std::time::Duration::from_secs(600));
    assert_eq!(p.auto_threshold, 1_048_576);
    assert_eq!(p.no_redirect_header.as_str(), "x-no-redirect");
    assert_eq!(p.idle_connections, 64);
    assert_eq!(
        p.idle_connection_timeout,
        std::time::Duration::from_secs(60)
    );
}

#[test]
fn proxy_config_errors_name_their_place() {
    let y = "fallback: http://o.example.org/\nmode: fast\nrules:\n  - { pattern: \"a[\", mode: proxy }\n  - { pattern: \"*.iso\" }\nproxy:\n  max_attempts: 0\n  idle_timeout: 0s\n  follow_redirects: 11\n  auto_threshold: -1\n  no_redirect_header: connection\n  idle_connections: 0\n  idle_connection_timeout: 0s\n";
    let errs = Config::from_yaml(y, Path::new(".")).unwrap_err();
    let places: Vec<&str> = errs.0.iter().map(|e| e.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "mode",
            "rules[0].pattern",
            "rules[1].mode",
            "proxy.idle_timeout",
            "proxy.idle_connection_timeout",
            "proxy.auto_threshold",
            "proxy.no_redirect_header",
            "proxy.max_attempts",
            "proxy.follow_redirects",
            "proxy.idle_connections",
        ],
        "{errs}"
    );
}
