//! The subcommands as a user runs them: locate, explain, check-config notes, demo.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn locate_reads_the_demo_databases() {
    let city = repo_path("geoip/demo-city.mmdb");
    let asn = repo_path("geoip/demo-asn.mmdb");
    let (ok, out, err) = run(&[
        "locate",
        "--city",
        city.to_str().unwrap(),
        "--asn",
        asn.to_str().unwrap(),
        DE,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("result:    found"), "{out}");
    assert!(out.contains("country:   DE"), "{out}");
    assert!(out.contains("continent: EU"), "{out}");
    assert!(out.contains("asn:       64496"), "{out}");
    let (ok, out, _) = run(&["locate", "--city", city.to_str().unwrap(), "10.0.0.1"]);
    assert!(ok);
    assert!(out.contains("result:    unknown"), "{out}");
    let example = repo_path("config/mirrorgate.example.yaml");
    let (ok, out, err) = run(&[
        "locate",
        "--config",
        example.to_str().unwrap(),
        "2001:db8:8::10",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("country:   JP"), "{out}");
    let (ok, _, err) = run(&["locate", "--city", "/nonexistent.mmdb", DE]);
    assert!(!ok);
    assert!(
        err.contains("/nonexistent.mmdb"),
        "the error names the file: {err}"
    );
}

#[test]
fn locate_without_a_database_uses_the_embedded_demo_ones() {
    // As geoip/README.md shows it: no --config, no --city.
    let (ok, out, err) = run(&["locate", "2001:db8:b::10"]);
    assert!(ok, "{err}");
    assert!(out.contains("country:   AU"), "{out}");
    assert!(
        out.contains("database:  demo-city.mmdb (embedded demo data"),
        "says which database answered: {out}"
    );
}

fn write_config(dir: &tempfile::TempDir, mirrors: &[M<'_>]) -> String {
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config_yaml(mirrors, "health:\n  timeout: 1s")).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn explain_probes_then_ranks_with_reasons() {
    let up = FakeMirror::start().await;
    let down = FakeMirror::start().await;
    down.set_status(500);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &[
            M {
                name: "de-down",
                url: down.url(),
                cc: "DE",
                lat: 50.11,
                lon: 8.68,
                extra: "",
            },
            M {
                name: "us-up",
                url: up.url(),
                cc: "US",
                lat: 40.71,
                lon: -74.01,
                extra: "",
            },
            M {
                name: "jp-only",
                url: up.url(),
                cc: "JP",
                lat: 35.68,
                lon: 139.69,
                extra: "countries_only: [JP]",
            },
        ],
    );
    let out = tokio::task::spawn_blocking(move || {
        run(&["explain", "--config", &cfg, "--ip", DE, "/a/b.iso"])
    })
    .await
    .unwrap();
    let (ok, out, err) = out;
    assert!(ok, "{err}");
    assert!(out.contains("country DE"), "{out}");
    assert!(
        out.contains(&format!("redirect /a/b.iso -> {}a/b.iso", up.url())),
        "{out}"
    );
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    assert!(line("us-up").trim_start().starts_with('1'), "{out}");
    assert!(line("de-down").contains("down"), "{out}");
    assert!(
        line("jp-only").contains("serves only some countries"),
        "{out}"
    );
    assert!(
        err.contains("HTTP status 500"),
        "the failed probe is named: {err}"
    );
}

#[tokio::test]
async fn check_config_notes_locations_from_geoip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    // A mirror without a location, at an address the demo database places in Japan.
    std::fs::write(
        &path,
        format!(
            "geoip:\n  city: {}\nmirrors:\n  - name: somewhere\n    url: http://192.0.2.120/pub/\n",
            repo_path("geoip/demo-city.mmdb").display()
        ),
    )
    .unwrap();
    let p = path.to_str().unwrap().to_string();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || run(&["check-config", "--config", &p]))
            .await
            .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("mirrors[0]: somewhere: location from GeoIP for 192.0.2.120: JP"),
        "{out}"
    );
}

#[tokio::test]
async fn check_config_lists_every_unknown_key_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    // Three typos at three depths, and a bad value beside them.
    std::fs::write(
        &path,
        "listen_adress: 127.0.0.1:1\n\
         health:\n  intervall: 5s\n\
         mirrors:\n  - name: a\n    url: http://192.0.2.1/\n    wieght: 3\n    latitude: 200\n",
    )
    .unwrap();
    let p = path.to_str().unwrap().to_string();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || run(&["check-config", "--config", &p]))
            .await
            .unwrap();
    assert!(!ok, "{out}");
    let all = format!("{out}{err}");
    for (place, line) in [
        ("listen_adress", 1),
        ("health.intervall", 3),
        ("mirrors[0].wieght", 7),
    ] {
        let found = all
            .lines()
            .find(|l| l.contains(&format!("{place}: unknown field")))
            .unwrap_or_else(|| panic!("{place} is reported: {all}"));
        assert!(found.contains(&format!("(line {line}, column ")), "{found}");
    }
    assert!(
        all.contains("mirrors[0].longitude: is missing"),
        "the value errors too: {all}"
    );
}

#[tokio::test]
async fn demo_runs_and_places_clients() {
    let mut child = bin()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let text = within("the demo's instructions", async {
        tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                text.push_str(&line);
                text.push('\n');
                if line.contains("Ctrl-C") {
                    break;
                }
            }
            text
        })
        .await
        .unwrap()
    })
    .await;
    let public = text
        .split("public http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("public address")
        .to_string();
    let de_mirror = text
        .lines()
        .find(|l| l.contains("mirror de-fra"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let r = http
        .get(format!("http://{public}/releases/1.0/demo-1.0.iso"))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(loc, format!("{de_mirror}releases/1.0/demo-1.0.iso"));
    // The mirror really serves the file it was sent to.
    let body = http.get(&loc).send().await.unwrap();
    assert_eq!(body.status(), 200);
    let iso = body.bytes().await.unwrap();
    assert_eq!(iso.len(), 256 * 1024);
    // The demo has an origin tree: the hash is known, and said everywhere.
    let sha = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&iso)
    };
    let hex_sha = hex::encode(sha);
    let digest = r.headers()["digest"].to_str().unwrap().to_string();
    use base64::Engine as _;
    assert_eq!(
        digest,
        format!(
            "sha-256={}",
            base64::engine::general_purpose::STANDARD.encode(sha)
        )
    );
    let answer = http
        .get(format!("http://{public}/releases/1.0/demo-1.0.iso?sha256"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains(&hex_sha));
    let meta4 = http
        .get(format!("http://{public}/releases/1.0/demo-1.0.iso?meta4"))
        .header("x-forwarded-for", "192.0.2.1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        meta4.contains(&format!("<hash type=\"sha-256\">{hex_sha}</hash>")),
        "{meta4}"
    );
    // The printed explain command works as printed, against the demo's config file.
    let explain = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" explain --config "))
        .expect("an explain example")
        .to_string();
    let args: Vec<String> = explain.split_whitespace().map(String::from).collect();
    let demo_dir = std::path::PathBuf::from(&args[3])
        .parent()
        .unwrap()
        .to_path_buf();
    let out = tokio::task::spawn_blocking(move || Command::new(&args[0]).args(&args[1..]).output())
        .await
        .unwrap()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{explain}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The German client, placed by the demo database the config names, goes to Frankfurt.
    assert!(report.contains("country DE"), "{report}");
    assert!(
        report.contains(&format!(
            "redirect /releases/1.0/demo-1.0.iso -> {de_mirror}releases/1.0/demo-1.0.iso"
        )),
        "{report}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success());
    assert!(
        !demo_dir.exists(),
        "the demo removes its directory on exit: {}",
        demo_dir.display()
    );
}
