//! The answers for clients other than a redirect, through the real listener:
//! JSON, Metalink (checked by xmllint against the RFC 5854 schema), apt's
//! mirror list, the mirror list and status pages (rendered by headless
//! Chromium), and `curl -L` following a redirect to the right bytes.

mod support;

use std::process::Command;

use support::*;

const BODY: &[u8] = b"the demo file, as every mirror serves it\n";

struct World {
    app: TestApp,
    mirrors: Vec<TreeMirror>,
}

async fn world() -> World {
    let mut mirrors = Vec::new();
    for _ in 0..3 {
        let m = TreeMirror::start().await;
        m.put("releases/demo.iso", BODY);
        mirrors.push(m);
    }
    let ms = [
        M::de_fra(mirrors[0].url()),
        M {
            name: "us-nyc",
            url: mirrors[1].url(),
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        },
        M {
            name: "jp-only",
            url: mirrors[2].url(),
            cc: "JP",
            lat: 35.68,
            lon: 139.69,
            extra: "countries_only: [JP]",
        },
    ];
    let app = TestApp::start(&config_yaml(&ms, TRUSTED_MANUAL_PROBES)).await;
    World { app, mirrors }
}

async fn get(w: &World, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut r = w
        .app
        .http
        .get(w.app.url(path))
        .header("x-forwarded-for", DE);
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn json_ranks_for_the_client() {
    let w = world().await;
    for (path, accept) in [
        ("/releases/demo.iso?json", None),
        ("/releases/demo.iso", Some("application/json")),
    ] {
        let r = get(&w, path, accept).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let mirrors = v["mirrors"].as_array().unwrap();
        assert_eq!(mirrors[0]["name"], "de-fra", "{v}");
        assert_eq!(mirrors.len(), 2, "every eligible mirror, ranked: {v}");
        assert!(
            v["left_out"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "jp-only"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn metalink_validates_and_lists_mirrors() {
    let w = world().await;
    for (path, accept) in [
        ("/releases/demo.iso?meta4", None),
        ("/releases/demo.iso.meta4", None),
        ("/releases/demo.iso", Some("application/metalink4+xml")),
    ] {
        let r = get(&w, path, accept).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/metalink4+xml");
        let doc = r.text().await.unwrap();
        assert!(
            doc.contains(&format!("{}releases/demo.iso</url>", w.mirrors[0].url())),
            "{doc}"
        );
        assert!(doc.contains("location=\"de\""), "{doc}");
        if have_tool("xmllint", "libxml2-utils") {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("a.meta4");
            std::fs::write(&file, &doc).unwrap();
            let out = Command::new("xmllint")
                .args(["--noout", "--relaxng"])
                .arg(repo_path("tests/data/metalink4.rng"))
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "xmllint: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[tokio::test]
async fn apt_mirror_list_names_base_urls() {
    let w = world().await;
    let r = get(&w, "/?aptmirrors", None).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines[0],
        format!("{}\tpriority:1", w.mirrors[0].url()),
        "{text}"
    );
    assert!(
        !text.contains(&w.mirrors[2].url()),
        "a mirror that may not serve this client is not listed"
    );
}

#[tokio::test]
async fn curl_follows_the_redirect_to_the_bytes() {
    let w = world().await;
    if !have_tool("curl", "curl") {
        return;
    }
    let url = w.app.url("/releases/demo.iso");
    // Off the test's runtime thread: the server answers on it.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "-sfL",
                "--noproxy",
                "*",
                "-H",
                &format!("X-Forwarded-For: {DE}"),
            ])
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, BODY);
    assert_eq!(
        w.mirrors[0].hits_of("releases/demo.iso"),
        1,
        "the bytes came from the nearest mirror"
    );
}

#[tokio::test]
async fn pages_render_in_a_browser_and_never_run_injected_markup() {
    let w = world().await;
    // Served as pages: escaped, and without any script allowed to run.
    let r = get(&w, "/releases/demo.iso?mirrorlist", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    // The quotes are percent-encoded too: Debian's `chromium` launcher is a
    // shell script that drops a URL with a bare `'`, and the page shows the
    // decoded path either way.
    let hostile = "/releases/%3Cimg%20src=x%20onerror=%22document.title=%27pwned%27%22%3E%3Cscript%3Edocument.title=%27pwned%27.iso?mirrorlist";
    let html = get(&w, hostile, None).await.text().await.unwrap();
    assert!(
        !html.contains("<script>document") && !html.contains("<img src=x"),
        "{html}"
    );
    assert!(
        html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
        "{html}"
    );
    if !have_tool("chromium", "chromium") {
        return;
    }
    let dom = tokio::task::spawn_blocking({
        let url = w.app.url("/releases/demo.iso?mirrorlist");
        move || chromium_dom(&url)
    })
    .await
    .unwrap();
    assert!(dom.contains("id=\"mirrors\""), "{dom}");
    assert!(
        dom.contains(">de-fra</a>") && dom.contains(">us-nyc</a>"),
        "ranked mirrors are listed: {dom}"
    );
    assert!(
        dom.contains("jp-only") && dom.contains("serves only some countries"),
        "left out, with why: {dom}"
    );
    // The client address comes from the peer here (Chromium sends no XFF): an unknown place.
    let dom = tokio::task::spawn_blocking({
        let url = w.app.url(hostile);
        move || chromium_dom(&url)
    })
    .await
    .unwrap();
    assert!(
        !dom.contains("pwned</title>"),
        "an injected script ran: {dom}"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "injected markup became an element: {dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title"),
        "shown as text: {dom}"
    );
    let dom = tokio::task::spawn_blocking({
        let url = w.app.url("/?mirrorstats&sort=state");
        move || chromium_dom(&url)
    })
    .await
    .unwrap();
    for name in ["de-fra", "us-nyc", "jp-only"] {
        assert!(
            dom.contains(&format!(">{name}</a>")),
            "status lists {name}: {dom}"
        );
    }
    assert!(dom.contains("State ▲"), "sorted by state: {dom}");
}

#[tokio::test]
async fn aria2c_downloads_through_the_metalink_from_several_mirrors() {
    if !have_tool("aria2c", "aria2") {
        return;
    }
    // 8 MiB of varied bytes, published by an origin tree and held by two mirrors.
    let body: Vec<u8> = (0u32..8 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let origin = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(origin.path().join("releases")).unwrap();
    std::fs::write(origin.path().join("releases/big.iso"), &body).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(origin.path().join("releases/big.iso"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    let trace = format!(
        "{}\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let mut mirrors = Vec::new();
    for _ in 0..2 {
        let m = TreeMirror::start().await;
        m.put("releases/big.iso", body.clone());
        m.put("project/trace/origin", trace.clone());
        mirrors.push(m);
    }
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\norigin:\n  root: {}\n  settle: 1s\n  trace_file: project/trace/origin\n",
        origin.path().display()
    );
    let ms = [
        M {
            name: "a",
            url: mirrors[0].url(),
            cc: "DE",
            lat: 50.11,
            lon: 8.68,
            extra: "",
        },
        M {
            name: "b",
            url: mirrors[1].url(),
            cc: "FR",
            lat: 48.86,
            lon: 2.35,
            extra: "",
        },
    ];
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    app.wait_for("the hash of big.iso", |s| {
        s.content
            .lookup("releases/big.iso")
            .and_then(|(_, i)| i.sha256)
            .is_some()
    })
    .await;
    let meta = app.get_text(app.url("/releases/big.iso.meta4")).await;
    assert_eq!(meta.matches("<url ").count(), 2, "{meta}");
    let dir = tempfile::tempdir().unwrap();
    let url = app.url("/releases/big.iso.meta4");
    let out = aria2c(
        &[
            "--no-conf",
            "--console-log-level=notice",
            "--summary-interval=0",
            "--split=4",
            "--min-split-size=1M",
            // aria2c counts connections per host, and both mirrors are 127.0.0.1.
            "--max-connection-per-server=4",
            "--uri-selector=inorder",
            // Slow enough on loopback that every connection gets a piece.
            "--max-overall-download-limit=8M",
            "--check-integrity=true",
            "--all-proxy=",
        ],
        dir.path(),
        url,
    )
    .await;
    let got = std::fs::read(dir.path().join("big.iso"))
        .expect("aria2c saved the file under the Metalink's name");
    assert!(got == body, "the download is byte-identical");
    for (i, m) in mirrors.iter().enumerate() {
        assert!(
            m.hits_of("releases/big.iso") >= 1,
            "mirror {i} served part of the file: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// aria2c as a new user runs it, with its default options: its `Accept`
/// names the Metalink types beside `*/*` at the same weight, which asks for
/// nothing in particular. It must get the redirect and save the file itself
/// under its own name, not the Metalink's XML.
#[tokio::test]
async fn aria2c_with_default_options_saves_the_file() {
    if !have_tool("aria2c", "aria2") {
        return;
    }
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let url = w.app.url("/releases/demo.iso");
    // No user config and no proxy: otherwise aria2c's own defaults.
    aria2c(&["--no-conf", "--all-proxy="], dir.path(), url).await;
    let got = std::fs::read(dir.path().join("demo.iso")).expect("saved under its own name");
    assert_eq!(
        got,
        BODY,
        "the file, not a Metalink: {}",
        String::from_utf8_lossy(&got)
    );
}

/// Each fact of the mirror list sits under its own heading, on the page as
/// served and in the DOM a browser builds: a left-out mirror's reason under
/// "Why not", never under "Last sync".
#[tokio::test]
async fn mirror_list_shows_each_fact_under_its_heading() {
    let w = world().await;
    let check = |html: &str| {
        let tables = html::tables(html);
        let (t, row) = tables
            .iter()
            .find_map(|t| t.row_with("jp-only").map(|r| (t, r)))
            .unwrap_or_else(|| panic!("jp-only is not in any table: {html}"));
        let why = "serves only some countries, not the client's";
        assert_eq!(t.cell(row, "Why not"), Some(why), "{t:?}");
        assert_ne!(t.cell(row, "Last sync"), Some(why), "{t:?}");
        let ranked = html::table(html, "mirrors");
        let de = ranked.row_with("de-fra").expect("de-fra is ranked");
        assert_eq!(ranked.cell(de, "#"), Some("1"), "{ranked:?}");
        assert_eq!(ranked.cell(de, "State"), Some("up"), "{ranked:?}");
    };
    let html = get(&w, "/releases/demo.iso?mirrorlist", None)
        .await
        .text()
        .await
        .unwrap();
    check(&html);
    if !have_tool("chromium", "chromium") {
        return;
    }
    // Chromium's client comes from the peer (no XFF): an unknown place, where
    // jp-only is still left out for its country list.
    let dom = tokio::task::spawn_blocking({
        let url = w.app.url("/releases/demo.iso?mirrorlist");
        move || chromium_dom(&url)
    })
    .await
    .unwrap();
    let tables = html::tables(&dom);
    let (t, row) = tables
        .iter()
        .find_map(|t| t.row_with("jp-only").map(|r| (t, r)))
        .unwrap_or_else(|| panic!("jp-only is not in any table: {dom}"));
    assert_eq!(
        t.cell(row, "Why not"),
        Some("serves only some countries, not the client's"),
        "{t:?}"
    );
}

/// The status page's "Last failure" column says when the failure was, and
/// its heading sorts by that time (it used to sort by name).
#[tokio::test]
async fn status_page_dates_failures_and_sorts_by_them() {
    let good = FakeMirror::start().await;
    let bad = FakeMirror::start().await;
    bad.set_status(503);
    let ms = [
        M {
            name: "a-good",
            url: good.url(),
            cc: "DE",
            lat: 50.11,
            lon: 8.68,
            extra: "",
        },
        M {
            name: "z-bad",
            url: bad.url(),
            cc: "US",
            lat: 40.71,
            lon: -74.01,
            extra: "",
        },
    ];
    let app = TestApp::start(&config_yaml(&ms, TRUSTED_MANUAL_PROBES)).await;
    app.wait_for("z-bad's failure", |s| {
        s.mirror("z-bad")
            .is_some_and(|e| e.health.last_failure.is_some())
    })
    .await;
    let html = app.get_text(app.url("/?mirrorstats")).await;
    let hrefs = html::hrefs_of(&html, "Last failure");
    assert_eq!(hrefs, ["?mirrorstats&sort=failure"], "{html}");
    let t = html::table(&html, "status");
    let row = t.row_with("z-bad").expect("z-bad is listed");
    let failure = t.cell(row, "Last failure").expect("a Last failure column");
    // "2026-12-05 02:10 UTC: <reason>": the time, then the reason.
    let (at, reason) = failure
        .split_once(" UTC: ")
        .unwrap_or_else(|| panic!("no time in {failure:?}"));
    assert_eq!(at.len(), "2026-12-05 02:10".len(), "{failure:?}");
    assert!(at.starts_with("20"), "{failure:?}");
    assert!(reason.contains("503"), "{failure:?}");
    let good_row = t.row_with("a-good").expect("a-good is listed");
    assert_eq!(t.cell(good_row, "Last failure"), Some("–"));
    // Sorted by that time, latest first: the failed mirror leads.
    let html = app
        .get_text(app.url("/?mirrorstats&sort=failure&desc"))
        .await;
    let t = html::table(&html, "status");
    assert_eq!(t.rows[0][0], "z-bad", "{t:?}");
    assert_eq!(
        html::hrefs_of(&html, "Last failure ▼"),
        ["?mirrorstats&sort=failure"]
    );
}

/// Runs the real aria2c with these options, saving into `dir`, and asserts
/// that it succeeded (its output in the message otherwise).
async fn aria2c(args: &[&str], dir: &std::path::Path, url: String) -> std::process::Output {
    let mut cmd = Command::new("aria2c");
    cmd.args(args)
        .arg(format!("--dir={}", dir.display()))
        .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "aria2c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
