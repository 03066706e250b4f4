//! Every query of `deploy/grafana/mirrorgate.json` and every expression of
//! `deploy/prometheus/rules.yml`, evaluated by a real Prometheus (Debian's
//! `prometheus`) that scrapes the real binary under a short load: each must
//! parse and return data, so none names a metric or label mirrorgate does
//! not export. An alert's expression is evaluated whole (it must parse) and
//! without its threshold (it must return data: the alert could fire).

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use support::process::{deploy_tool, free_port, Helper, Served};
use support::*;

fn trace(age: Duration) -> String {
    format!(
        "{}\n",
        humantime::format_rfc3339_seconds(SystemTime::now() - age)
    )
}

/// Two mirrors with trace files (one an hour behind: a lag), fast probes,
/// `*.bin` proxied.
fn config(de: &TreeMirror, us: &TreeMirror) -> String {
    let site = |name, url, cc, lat, lon| M {
        name,
        url,
        cc,
        lat,
        lon,
        extra: "",
    };
    config_yaml(
        &[
            site("de-fra", de.url(), "DE", 50.11, 8.68),
            site("us-east", us.url(), "US", 39.04, -77.49),
        ],
        "trusted_proxies: [127.0.0.0/8]\n\
         health:\n  interval: 300ms\n  timeout: 250ms\n  rise: 1\n  fall: 1\n\
         origin:\n  trace_file: project/trace/origin\n  max_lag: 24h\n\
         rules:\n  - { pattern: \"*.bin\", mode: proxy }",
    )
}

/// The expressions of the dashboard: every target, and the metric behind
/// each `label_values(METRIC, LABEL)` variable. Grafana's variables are
/// given values Prometheus understands.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo_path("deploy/grafana/mirrorgate.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            out.push(t["expr"].as_str().expect("an expr").to_string());
        }
    }
    for var in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = var["definition"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .unwrap_or_else(|| panic!("unexpected variable query {q}"));
            out.push(inner.to_string());
        }
    }
    assert!(out.len() >= 10, "too few queries found: {out:?}");
    out.into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
        })
        .collect()
}

/// The rules: (recorded expressions, alert expressions, recorded names).
fn rule_exprs() -> (Vec<String>, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo_path("deploy/prometheus/rules.yml")).unwrap();
    let rules: serde_json::Value = serde_saphyr::from_str(&text).expect("rules.yml is YAML");
    let (mut recorded, mut alerts, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr").trim().to_string();
            if rule.get("alert").is_some() {
                alerts.push(expr);
            } else {
                recorded.push(expr);
                names.push(rule["record"].as_str().expect("record").to_string());
            }
        }
    }
    assert!(recorded.len() >= 5 && alerts.len() >= 7);
    (recorded, alerts, names)
}

/// An alert's expression without its final comparison with a number.
fn without_threshold(expr: &str) -> String {
    let e = expr.trim_end();
    let number_start = e
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    let head = e[..number_start].trim_end();
    for op in [">=", "<=", "==", "!=", ">", "<"] {
        if let Some(lhs) = head.strip_suffix(op) {
            return lhs.trim_end().to_string();
        }
    }
    panic!("no threshold at the end of {expr}")
}

/// Evaluates `expr` now: Ok(number of series) or Err(Prometheus's error).
async fn query(http: &reqwest::Client, prom: &str, expr: &str) -> Result<usize, String> {
    let url =
        url::Url::parse_with_params(&format!("{prom}/api/v1/query"), [("query", expr)]).unwrap();
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_str(&r.text().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"].as_array().map_or(0, Vec::len))
}

#[tokio::test]
async fn every_dashboard_and_rule_expression_returns_data_from_a_real_prometheus() {
    let Some(prometheus) = deploy_tool("prometheus", "prometheus") else {
        return;
    };
    let dashboard = dashboard_exprs();
    let (recorded, alerts, recorded_names) = rule_exprs();

    let (de, us) = (TreeMirror::start().await, TreeMirror::start().await);
    de.put("project/trace/origin", trace(Duration::from_secs(3600)));
    us.put("project/trace/origin", trace(Duration::ZERO));
    let big = vec![7u8; 256 * 1024];
    de.put("big.bin", big.clone());
    us.put("big.bin", big);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg_path = d.join("mirrorgate.yaml");
    let good = config(&de, &us);
    std::fs::write(&cfg_path, &good).unwrap();
    let served = Served::start(&cfg_path, &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let admin = served.admin.clone();
    poll_until("readiness", || async {
        http.get(format!("http://{admin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // A refused reload, so that its counter exists, then the good config again.
    std::fs::write(&cfg_path, "listen: [not valid\n").unwrap();
    served.signal("-HUP");
    let metrics = format!("http://{admin}/metrics");
    poll_until("the refused reload", || async {
        let text = http
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains("mirrorgate_config_reloads_total{result=\"failure\"} 1")
    })
    .await;
    std::fs::write(&cfg_path, &good).unwrap();

    // Prometheus scraping the admin listener every second and evaluating the
    // rules every second.
    let port = free_port();
    let rules = repo_path("deploy/prometheus/rules.yml");
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: mirrorgate\n    static_configs:\n      - targets: ['{admin}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("prometheus.log")).unwrap();
    let _prom = Helper(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus"),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let prom_log = || std::fs::read_to_string(d.join("prometheus.log")).unwrap_or_default();
    within("Prometheus to be ready", async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let ready = http.get(format!("{prom}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
        }
    })
    .await;

    // The load, until every expression has data: redirects from two
    // countries, proxied downloads, and proxied requests for a file no
    // mirror has (proxy errors, upstream 404s).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (http, public, stop) = (http.clone(), served.public.clone(), stop.clone());
        tokio::spawn(async move {
            // Paced, not waited on: a steady trickle of requests.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                for (ip, path) in [
                    (DE, "/x.iso"),
                    (US, "/y.iso"),
                    (DE, "/big.bin"),
                    (US, "/gone.bin"),
                ] {
                    if let Ok(r) = http
                        .get(format!("http://{public}{path}"))
                        .header("x-forwarded-for", ip)
                        .send()
                        .await
                    {
                        let _ = r.bytes().await;
                    }
                }
            }
        })
    };

    let all: Vec<(String, String)> = dashboard
        .iter()
        .map(|e| ("dashboard".to_string(), e.clone()))
        .chain(
            recorded
                .iter()
                .map(|e| ("recording rule".to_string(), e.clone())),
        )
        .chain(
            alerts
                .iter()
                .map(|e| ("alert, threshold removed".to_string(), without_threshold(e))),
        )
        .collect();
    // Whole alert expressions parse (they return data only when firing).
    for e in &alerts {
        if let Err(err) = query(&http, &prom, e).await {
            panic!("alert expression does not evaluate: {e}\n{err}");
        }
    }
    for (what, e) in &all {
        let mut last = Ok(0);
        let got = tokio::time::timeout(DEADLINE, async {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                last = query(&http, &prom, e).await;
                match &last {
                    Ok(n) if *n > 0 => return,
                    Err(err) if err.contains("bad_data") => return,
                    _ => {}
                }
            }
        })
        .await;
        match (&got, &last) {
            (Ok(()), Ok(_)) => {}
            _ => panic!(
                "{what} expression {e} returned {last:?}\nPrometheus log:\n{}",
                prom_log()
            ),
        }
    }
    // The recorded series themselves exist too.
    for name in &recorded_names {
        poll_until(&format!("the recorded series {name}"), || async {
            query(&http, &prom, name).await.is_ok_and(|n| n > 0)
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
}
