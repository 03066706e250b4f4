//! sd_notify: the real binary started as systemd starts a Type=notify
//! service, with `NOTIFY_SOCKET` naming a datagram socket the test listens
//! on: READY=1 once ready (the /readyz latch), RELOADING=1 (with
//! MONOTONIC_USEC) then READY=1 around a SIGHUP reload, STOPPING=1 on
//! SIGTERM, STATUS= with the mirrors up, and WATCHDOG=1 when asked.

mod support;

use std::path::Path;

use support::process::Served;
use support::*;
use tokio::net::UnixDatagram;

/// The next message on the socket (one datagram, `KEY=VALUE` lines).
async fn next(sock: &UnixDatagram, what: &str, log: &dyn Fn() -> String) -> String {
    let mut buf = vec![0u8; 4096];
    let got = tokio::time::timeout(DEADLINE, sock.recv(&mut buf)).await;
    match got {
        Ok(Ok(n)) => String::from_utf8(buf[..n].to_vec()).expect("UTF-8 message"),
        Ok(Err(e)) => panic!("receiving {what}: {e}"),
        Err(_) => panic!("timed out waiting for {what}; log:\n{}", log()),
    }
}

/// Reads messages until one has the line `want`; returns that message.
async fn until(sock: &UnixDatagram, want: &str, log: &dyn Fn() -> String) -> String {
    loop {
        let m = next(sock, want, log).await;
        if m.lines().any(|l| l == want) {
            return m;
        }
    }
}

fn config(dir: &Path, m: &FakeMirror, down: &FakeMirror) -> std::path::PathBuf {
    let path = dir.join("mirrorgate.yaml");
    let site = |name, url| M {
        name,
        url,
        cc: "DE",
        lat: 50.11,
        lon: 8.68,
        extra: "",
    };
    let yaml = config_yaml(
        &[site("de-up", m.url()), site("de-down", down.url())],
        "trusted_proxies: [127.0.0.0/8]\nhealth:\n  interval: 1h\n  timeout: 2s\n  rise: 1\n  fall: 1",
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn notifies_ready_reloading_and_stopping_on_a_path_socket() {
    let up = FakeMirror::start().await;
    let down = FakeMirror::start().await;
    down.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let cfg = config(dir.path(), &up, &down);
    let mut served = Served::start(&cfg, &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let log = || served.log_text();

    let ready = until(&sock, "READY=1", &log).await;
    // The same latch as /readyz: ready when the message arrives.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let readyz = http
        .get(format!("http://{}/readyz", served.admin))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(readyz, 200, "READY=1 sent before /readyz says ready");
    assert!(
        ready.contains("STATUS=serving: 1 of 2 mirrors up"),
        "status line in {ready:?}"
    );

    served.signal("-HUP");
    let reloading = until(&sock, "RELOADING=1", &log).await;
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{usec}");
    let again = until(&sock, "READY=1", &log).await;
    assert!(again.contains("STATUS=serving: "), "{again:?}");

    served.signal("-TERM");
    until(&sock, "STOPPING=1", &log).await;
    let exit = served.exit().await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn notifies_an_abstract_socket_and_pings_the_watchdog() {
    use std::os::linux::net::SocketAddrExt;
    let up = FakeMirror::start().await;
    let down = FakeMirror::start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("mirrorgate-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let std_sock = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    std_sock.set_nonblocking(true).unwrap();
    let sock = UnixDatagram::from_std(std_sock).unwrap();
    let cfg = config(dir.path(), &up, &down);
    let served = Served::start(
        &cfg,
        &[
            ("NOTIFY_SOCKET", &format!("@{name}")),
            // 200 ms: pings every 100 ms.
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let log = || served.log_text();
    until(&sock, "READY=1", &log).await;
    // Several pings, not one: they repeat.
    for _ in 0..3 {
        until(&sock, "WATCHDOG=1", &log).await;
    }
}
