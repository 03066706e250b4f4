//! The front proxies of `deploy/` for real: nginx and HAProxy (Debian
//! packages) run with the shipped config, its addresses and certificate
//! replaced by the test's, TLS in front of the real app. A client that
//! spoofs X-Forwarded-For is placed where the front proxy sees it
//! (loopback: unknown location), never where it claims to be; the admin
//! listener is not reachable through the front; a proxied download and a
//! Range request stream through intact.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::process::{deploy_tool, free_port, Helper};
use support::*;

/// `text` with `from` replaced by `to`; `from` must be there, so a change of
/// the shipped file that this rendering misses fails the test.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the shipped config");
    text.replace(from, to)
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM.
fn certificate() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// The app behind the front: a DE mirror that serves only clients in DE, a
/// US mirror (with a large file, proxied) that serves everyone. A client of
/// unknown location can only get the US mirror; one in DE gets the DE one.
struct World {
    app: TestApp,
    de: FakeMirror,
    us: BigMirror,
}

const LEN: u64 = 3 * 1024 * 1024 + 17;

async fn world() -> World {
    let de = FakeMirror::start().await;
    let us = BigMirror::start(LEN).await;
    let mirrors = [
        M {
            name: "de-fra",
            url: de.url(),
            cc: "DE",
            lat: 50.11,
            lon: 8.68,
            extra: "countries_only: [DE]",
        },
        M {
            name: "us-east",
            url: us.url(),
            cc: "US",
            lat: 39.04,
            lon: -77.49,
            extra: "",
        },
    ];
    // Loopback trusted, as a front proxy on the same host is: the front must
    // therefore SET the header, or a client's own value would be believed.
    let top =
        format!("{TRUSTED_MANUAL_PROBES}\nrules:\n  - {{ pattern: \"big.bin\", mode: proxy }}");
    let app = TestApp::start(&config_yaml(&mirrors, &top)).await;
    World { app, de, us }
}

/// Waits until something accepts connections on the port; the process's
/// log in the failure message.
async fn listening(port: u16, what: &str, log: &Path) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    loop {
        tick.tick().await;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if started.elapsed() > DEADLINE {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} is not listening on {port}:\n{text}");
        }
    }
}

/// What the front must do, checked through its TLS listener at `tls_port`
/// and its plain-HTTP one at `http_port`.
async fn check_front(w: &World, tls_port: u16, http_port: u16) {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let https = format!("https://127.0.0.1:{tls_port}");
    let http = format!("http://127.0.0.1:{http_port}");
    let client_country = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("{base}/x.iso?json"))
                .header("x-forwarded-for", DE)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200);
            let text = r.text().await.expect("a body");
            let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
            v["client"]["country"].clone()
        }
    };

    // The control: straight to mirrorgate from a trusted address, the header
    // is believed: the client is in DE and gets the DE mirror.
    let direct = format!("http://{}", w.app.app.public_addr());
    assert_eq!(client_country(direct).await, "DE");
    let (status, loc) = w.app.get_from(DE, "/x.iso").await;
    assert_eq!(status, 302);
    assert!(
        loc.as_deref().is_some_and(|l| l.starts_with(&w.de.url())),
        "direct: {loc:?}"
    );

    // Through the front, over TLS and plain HTTP, the spoofed header is
    // replaced by the peer the front sees: loopback, of unknown location.
    assert_eq!(client_country(https.clone()).await, serde_json::Value::Null);
    assert_eq!(client_country(http.clone()).await, serde_json::Value::Null);
    // So only the US mirror fits (over plain HTTP: the test's mirrors are
    // http, and a client that came over HTTPS gets only https mirrors).
    {
        let r = client
            .get(format!("{http}/x.iso"))
            .header("x-forwarded-for", DE)
            .send()
            .await
            .expect("request through the front");
        let status = r.status();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(status, 302, "{}", r.text().await.unwrap_or_default());
        assert_eq!(
            loc,
            Some(format!("{}x.iso", w.us.url())),
            "the spoofed address was believed"
        );
    }
    // The front tells mirrorgate the client came over HTTPS: no http mirror
    // for it (and no fallback configured).
    let r = client.get(format!("{https}/x.iso")).send().await.unwrap();
    assert_eq!(r.status(), 503, "an http mirror offered to an HTTPS client");

    // A proxied download streams through whole, and a Range request gets
    // just its bytes.
    let r = client.get(format!("{http}/big.bin")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, LEN);
    assert!(matches_file(0, &body), "proxied body differs");
    let r = client
        .get(format!("{http}/big.bin"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers().get("content-range").unwrap(),
        &format!("bytes 1000-1999/{LEN}")
    );
    assert_eq!(r.bytes().await.unwrap(), expected(1000, 1000));

    // The admin listener is not behind the front: /metrics there is a
    // download path of the public listener, not the exposition.
    for base in [&https, &http] {
        let r = client.get(format!("{base}/metrics")).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("mirrorgate_requests_total"),
            "admin metrics reachable through the front ({status})"
        );
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Helper {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Helper(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the front proxy"),
    )
}

#[tokio::test]
async fn nginx_front_sets_the_client_address_and_streams() {
    let Some(nginx) = deploy_tool("nginx", "nginx-light") else {
        return;
    };
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = certificate();
    std::fs::write(d.join("cert.pem"), cert).unwrap();
    std::fs::write(d.join("key.pem"), key).unwrap();
    let (port, http_port) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(repo_path("deploy/nginx/mirrorgate.conf")).unwrap();
    let mut site = replace(
        &shipped,
        "    listen 443 ssl http2;\n",
        &format!("    listen 127.0.0.1:{port} ssl http2;\n"),
    );
    site = replace(
        &site,
        "    listen 80;\n",
        &format!("    listen 127.0.0.1:{http_port};\n"),
    );
    for gone in ["    listen [::]:443 ssl http2;\n", "    listen [::]:80;\n"] {
        site = replace(&site, gone, "");
    }
    site = replace(
        &site,
        "server 127.0.0.1:8080;",
        &format!("server {};", w.app.app.public_addr()),
    );
    site = replace(
        &site,
        "/etc/ssl/certs/download.example.org.pem",
        &d.join("cert.pem").display().to_string(),
    );
    site = replace(
        &site,
        "/etc/ssl/private/download.example.org.key",
        &d.join("key.pem").display().to_string(),
    );
    std::fs::write(d.join("site.conf"), site).unwrap();
    // The main config around the site file, everything in the temp dir.
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         include {d}/site.conf;\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), main).unwrap();
    let conf = d.join("nginx.conf");
    let check = Command::new(&nginx)
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = d.join("nginx.out");
    let _nginx = spawn(
        Command::new(&nginx)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"]),
        &log,
    );
    listening(port, "nginx", &log).await;
    listening(http_port, "nginx", &log).await;
    check_front(&w, port, http_port).await;
}

#[tokio::test]
async fn haproxy_front_sets_the_client_address_and_streams() {
    let Some(haproxy) = deploy_tool("haproxy", "haproxy") else {
        return;
    };
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = certificate();
    std::fs::write(d.join("both.pem"), format!("{cert}{key}")).unwrap();
    let (port, http_port) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(repo_path("deploy/haproxy/haproxy.cfg")).unwrap();
    let mut cfg = replace(
        &shipped,
        "bind :::443 v4v6 ssl crt /etc/haproxy/certs/download.example.org.pem",
        &format!(
            "bind 127.0.0.1:{port} ssl crt {}",
            d.join("both.pem").display()
        ),
    );
    cfg = replace(
        &cfg,
        "    bind :::80 v4v6\n",
        &format!("    bind 127.0.0.1:{http_port}\n"),
    );
    // Within a test process's open-file limit.
    cfg = replace(&cfg, "maxconn 20000", "maxconn 1000");
    // No syslog in a test: the log goes to stderr.
    cfg = replace(&cfg, "log /dev/log local0", "log stderr format raw local0");
    cfg = replace(
        &cfg,
        "server mirrorgate 127.0.0.1:8080",
        &format!("server mirrorgate {}", w.app.app.public_addr()),
    );
    cfg = replace(
        &cfg,
        "check port 8081",
        &format!("check port {}", w.app.app.admin_addr().port()),
    );
    let conf = d.join("haproxy.cfg");
    std::fs::write(&conf, cfg).unwrap();
    let check = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = d.join("haproxy.out");
    let _haproxy = spawn(Command::new(&haproxy).arg("-db").arg("-f").arg(&conf), &log);
    listening(port, "haproxy", &log).await;
    listening(http_port, "haproxy", &log).await;
    check_front(&w, port, http_port).await;
}
