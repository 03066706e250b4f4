//! The real binary: check-config exit codes, SIGHUP reloads (a bad one keeps the
//! old config serving), SIGTERM drains and exits 0.

mod support;

use std::process::{Child, Command, Stdio};

use support::process::addresses;
use support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirrorgate"))
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn check_config_reports_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: nowhere\nredirect_status: 200\nmirrors:\n  - name: a\n    url: ftp://x/\n  - name: a\n    url: http://y/\n    weight: 0\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for place in [
        "listen",
        "redirect_status",
        "mirrors[0].url",
        "mirrors[1].name",
        "mirrors[1].weight",
    ] {
        assert!(
            err.contains(&format!("{place}:")),
            "no error at {place} in:\n{err}"
        );
    }
    let ok = bin()
        .args(["check-config", "--config"])
        .arg(repo_path("config/mirrorgate.example.yaml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn sighup_reload_bad_keeps_old_good_applies_and_sigterm_exits_zero() {
    let m = FakeMirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirrorgate.yaml");
    let good = |status: u16| {
        config_yaml(
            &[M::de_fra(m.url())],
            &format!("trusted_proxies: [127.0.0.0/8]\nredirect_status: {status}"),
        )
    };
    std::fs::write(&path, good(302)).unwrap();
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (public, admin) = addresses(&mut child);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let metric = |name: &'static str| {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let body = http
                .get(format!("http://{admin}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        }
    };
    // Wait for readiness: the first probe round has finished.
    poll_until("readiness", || async {
        http.get(format!("http://{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    })
    .await;
    let status = || async {
        http.get(format!("http://{public}/x.iso"))
            .header("x-forwarded-for", DE)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 302);

    // A bad config: refused, the old one keeps serving.
    std::fs::write(&path, "listen: [this is not valid\n").unwrap();
    signal(&child, "-HUP");
    poll_until("the failed reload to be counted", || async {
        metric("mirrorgate_config_reloads_total{result=\"failure\"}").await >= 1.0
    })
    .await;
    assert_eq!(status().await, 302);

    // A good one: applied.
    std::fs::write(&path, good(307)).unwrap();
    signal(&child, "-HUP");
    poll_until("the reload to apply", || async {
        metric("mirrorgate_config_reloads_total{result=\"success\"}").await >= 1.0
    })
    .await;
    assert_eq!(status().await, 307);

    signal(&child, "-TERM");
    let exit = within("exit after SIGTERM", async {
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    })
    .await;
    assert!(exit.success(), "exit status {exit:?}");
}
