//! Metrics that tell operators what the state is: each mirror's health state
//! as a label (up, down, or not decided yet), and a snapshot generation that
//! moves only when something answers depend on changed.

mod support;

use mirrorgate::health::HealthState;
use support::*;

const TOKEN: &str = "test-token-0123456789";

async fn two_mirror_app() -> (TestApp, Vec<FakeMirror>) {
    let (mirrors, entries) = mirrors_at(
        &[
            ("de-fra", "DE", 50.11, 8.68),
            ("us-nyc", "US", 40.71, -74.0),
        ],
        |_| "",
    )
    .await;
    (
        TestApp::start(&config_yaml(&entries, TRUSTED_MANUAL_PROBES)).await,
        mirrors,
    )
}

/// Asks for a probe round through the admin API and waits until every
/// mirror has reported in the published snapshot.
async fn admin_probe_round(t: &TestApp) {
    let before: Vec<_> = t
        .app
        .state()
        .load()
        .mirrors
        .iter()
        .map(|e| e.health.last_check)
        .collect();
    let r = t
        .http
        .post(t.admin("/api/v1/probe"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    t.wait_for("a probe round", |s| {
        s.mirrors
            .iter()
            .zip(&before)
            .all(|(e, b)| e.health.last_check != *b)
    })
    .await;
}

fn state_lines(body: &str, mirror: &str) -> Vec<String> {
    let prefix = format!("mirrorgate_mirror_state{{mirror=\"{mirror}\",");
    let mut v: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l[prefix.len()..].to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn mirror_state_tells_down_from_not_decided() {
    let (mirrors, entries) = mirrors_at(
        &[
            ("de-fra", "DE", 50.11, 8.68),
            ("us-nyc", "US", 40.71, -74.0),
        ],
        |_| "",
    )
    .await;
    // Failing from the start: one failed probe (fall is 2) leaves it undecided.
    mirrors[1].set_status(500);
    let t = TestApp::start(&config_yaml(&entries, TRUSTED_MANUAL_PROBES)).await;
    let body = t.get_text(t.admin("/metrics")).await;
    assert_eq!(
        state_lines(&body, "de-fra"),
        [
            "state=\"down\"} 0",
            "state=\"unknown\"} 0",
            "state=\"up\"} 1"
        ],
        "{body}"
    );
    assert_eq!(
        state_lines(&body, "us-nyc"),
        [
            "state=\"down\"} 0",
            "state=\"unknown\"} 1",
            "state=\"up\"} 0"
        ],
        "{body}"
    );
    // mirror_up keeps its meaning: 1 only when up.
    assert!(body.contains("mirrorgate_mirror_up{mirror=\"us-nyc\"} 0"));
    assert!(body.contains("mirrorgate_mirror_up{mirror=\"de-fra\"} 1"));

    // The second failure decides it: down.
    admin_probe_round(&t).await;
    t.wait_state("us-nyc", HealthState::Down).await;
    let body = t.get_text(t.admin("/metrics")).await;
    assert_eq!(
        state_lines(&body, "us-nyc"),
        [
            "state=\"down\"} 1",
            "state=\"unknown\"} 0",
            "state=\"up\"} 0"
        ],
        "{body}"
    );
    assert!(body.contains("mirrorgate_mirror_up{mirror=\"us-nyc\"} 0"));
}

#[tokio::test]
async fn a_probe_round_that_changes_nothing_keeps_the_generation() {
    let (t, mirrors) = two_mirror_app().await;
    t.wait_state("de-fra", HealthState::Up).await;
    t.wait_state("us-nyc", HealthState::Up).await;
    let generation = t.admin_json("/api/v1/status").await["generation"].clone();
    for _ in 0..3 {
        admin_probe_round(&t).await;
    }
    let status = t.admin_json("/api/v1/status").await;
    assert_eq!(status["generation"], generation, "{status}");
    let body = t.get_text(t.admin("/metrics")).await;
    assert!(
        body.contains(&format!("mirrorgate_snapshot_generation {generation}\n")),
        "{body}"
    );
    // The round was published all the same: operators see the new check times.
    let v = t.admin_json("/api/v1/mirrors").await;
    assert!(v["mirrors"][0]["last_check"].is_string(), "{v}");

    // A round that changes a state moves it on.
    mirrors[1].set_status(500);
    admin_probe_round(&t).await;
    admin_probe_round(&t).await;
    t.wait_state("us-nyc", HealthState::Down).await;
    let status = t.admin_json("/api/v1/status").await;
    assert!(
        status["generation"].as_u64() > generation.as_u64(),
        "{status} after {generation}"
    );
}
