//! The lists (JSON, Metalink, apt's list, the mirror list page) with many
//! mirrors: paged (`?limit=N&offset=M`, 100 by default), ranked in the order
//! a redirect uses, and made concurrently without failing; and for a file no
//! mirror is yet known to have, the same answer a download gets.

mod support;

use support::*;

const MANY: usize = 150;

/// One fake mirror serving `MANY` configured mirrors (one base path each),
/// each at its own place, so that ranks are strict: no spread band, no tie.
async fn many() -> (TestApp, FakeMirror) {
    let fake = FakeMirror::start().await;
    let names: Vec<String> = (0..MANY).map(|i| format!("m{i:03}")).collect();
    let ms: Vec<M<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| M {
            name,
            url: format!("http://{}/m{i}/", fake.addr),
            cc: "DE",
            lat: 50.0 - i as f64 * 0.5,
            lon: 8.7 + i as f64 * 0.5,
            extra: "",
        })
        .collect();
    let top = format!("{TRUSTED_MANUAL_PROBES}\nselection:\n  band: 0\n  band_km: 0\n");
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    (app, fake)
}

async fn json(app: &TestApp, path: &str) -> (u16, serde_json::Value) {
    let r = app
        .http
        .get(app.url(path))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(text.into()))
}

fn ranks(v: &serde_json::Value) -> Vec<u64> {
    v["mirrors"]
        .as_array()
        .unwrap_or_else(|| panic!("no mirrors in {v}"))
        .iter()
        .map(|m| m["rank"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_show_100_mirrors_by_default_and_page_through_the_rest() {
    let (app, _fake) = many().await;
    let (status, v) = json(&app, "/a.iso?json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ranks(&v), (1..=100).collect::<Vec<u64>>());
    assert_eq!(v["mirrors"][0]["name"], "m000", "nearest first");
    assert_eq!(
        v["page"],
        serde_json::json!({"offset": 0, "limit": 100, "mirrors_total": MANY, "left_out_total": 0})
    );
    let (_, v) = json(&app, "/a.iso?json&limit=30&offset=140").await;
    assert_eq!(ranks(&v), (141..=150).collect::<Vec<u64>>());
    assert_eq!(v["page"]["offset"], 140);
    // Pages put together are the whole ranking, once each, in order.
    let mut names = Vec::new();
    for offset in [0, 50, 100] {
        let (_, v) = json(&app, &format!("/a.iso?limit=50&offset={offset}&json")).await;
        assert_eq!(
            ranks(&v),
            (offset + 1..=offset + 50).collect::<Vec<u64>>(),
            "{v}"
        );
        names.extend(
            v["mirrors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_string()),
        );
    }
    let expected: Vec<String> = (0..MANY).map(|i| format!("m{i:03}")).collect();
    assert_eq!(names, expected);
    // Every format pages alike.
    let meta = app
        .get_text(app.url("/a.iso?meta4&limit=5&offset=10"))
        .await;
    assert_eq!(meta.matches("<url ").count(), 5, "{meta}");
    assert!(meta.contains("<url priority=\"11\""), "{meta}");
    let meta = app.get_text(app.url("/a.iso?meta4")).await;
    assert_eq!(meta.matches("<url ").count(), 100);
    let apt = app.get_text(app.url("/?aptmirrors&limit=7")).await;
    assert_eq!(
        apt.lines().filter(|l| !l.starts_with('#')).count(),
        7,
        "{apt}"
    );
    let page = app.get_text(app.url("/a.iso?mirrorlist&limit=3")).await;
    assert_eq!(html::table(&page, "mirrors").rows.len(), 3, "{page}");
    // The page for people says where it is and links to its neighbours.
    let page = app
        .get_text(app.url("/a.iso?mirrorlist&limit=50&offset=50"))
        .await;
    let t = html::table(&page, "mirrors");
    assert_eq!(t.rows[0][0], "51", "{t:?}");
    assert!(page.contains("Mirrors 51–100 of 150."), "{page}");
    assert_eq!(
        html::hrefs_of(&page, "Previous"),
        ["?mirrorlist&limit=50&offset=0"]
    );
    assert_eq!(
        html::hrefs_of(&page, "Next"),
        ["?mirrorlist&limit=50&offset=100"]
    );
    let page = app.get_text(app.url("/a.iso?mirrorlist")).await;
    assert_eq!(
        html::hrefs_of(&page, "Next"),
        ["?mirrorlist&limit=100&offset=100"]
    );
    assert!(html::hrefs_of(&page, "Previous").is_empty(), "{page}");
}

#[tokio::test]
async fn a_bad_limit_or_offset_is_a_clear_400() {
    let (app, _fake) = many().await;
    for (query, names) in [
        ("json&limit=0", "limit"),
        ("json&limit=1001", "limit"),
        ("json&limit=ten", "limit"),
        ("meta4&offset=-1", "offset"),
        ("aptmirrors&offset=x", "offset"),
    ] {
        let r = app
            .http
            .get(app.url(&format!("/a.iso?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body = r.text().await.unwrap();
        assert!(body.starts_with(&format!("{names}: ")), "{query}: {body}");
    }
}

#[tokio::test]
async fn concurrent_lists_all_get_answers_and_redirects_still_flow() {
    let (app, _fake) = many().await;
    let lists = (0..24).map(|i| {
        let (http, url) = (
            app.http.clone(),
            app.url(&format!("/f{i}.iso?json&limit=1000")),
        );
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    });
    let (statuses, redirect) = tokio::join!(
        futures_join_all(lists.collect()),
        app.get_from(DE, "/a.iso")
    );
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(redirect.0, 302);
}

/// Awaits every future, in order, concurrently.
async fn futures_join_all<F: std::future::Future<Output = u16> + Send + 'static>(
    futs: Vec<F>,
) -> Vec<u16> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// A file published just now, on one mirror that has it, without a trace
/// file: nothing says the mirror synced it until an on-demand check does.
/// Asked first for a list or an explanation, the answer must be the one a
/// download gets (the mirror), not "no mirror".
#[tokio::test]
async fn a_new_file_asked_first_as_a_list_lists_the_mirror_that_has_it() {
    let origin = tempfile::tempdir().unwrap();
    let mirror = TreeMirror::start().await;
    let files = ["json.iso", "meta4.iso", "explain.iso", "page.iso"];
    for f in files {
        std::fs::write(origin.path().join(f), b"fresh bytes\n").unwrap();
        mirror.put(f, &b"fresh bytes\n"[..]);
    }
    let ms = [M {
        name: "de",
        url: mirror.url(),
        cc: "DE",
        lat: 50.11,
        lon: 8.68,
        extra: "",
    }];
    let top = format!(
        "{TRUSTED_MANUAL_PROBES}\norigin:\n  root: {}\n  settle: 1s\n  on_demand:\n    wait: 5s\n",
        origin.path().display()
    );
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    app.wait_for("the origin's index", |s| {
        files.iter().all(|f| s.content.lookup(f).is_some())
    })
    .await;
    let (status, v) = json(&app, "/json.iso?json").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mirrors"][0]["name"], "de", "{v}");
    let meta = app.get_text(app.url("/meta4.iso?meta4")).await;
    assert!(
        meta.contains(&format!(">{}meta4.iso</url>", mirror.url())),
        "{meta}"
    );
    let page = app.get_text(app.url("/page.iso?mirrorlist")).await;
    assert_eq!(html::table(&page, "mirrors").rows.len(), 1, "{page}");
    let v = app
        .admin_json(&format!("/api/v1/explain?ip={DE}&path=/explain.iso"))
        .await;
    assert_eq!(v["outcome"], "redirect", "{v}");
    assert_eq!(v["location"], format!("{}explain.iso", mirror.url()), "{v}");
}
