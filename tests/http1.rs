//! The public listener's direct HTTP/1.1 path (`http/conn.rs`) on the wire:
//! the real app on loopback, requests written byte for byte, responses read
//! off the socket. Its answers must be the very bytes hyper would write;
//! whatever it does not take (a body, an old version, an odd target, a long
//! head, another method) goes to hyper on the same connection; its limits
//! (header, idle and send timeouts, head size, shutdown) hold.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// Three mirrors continents apart: a client in Germany has one mirror in its
/// spread band (de-fra), the others named after it by distance, so every
/// answer is the same whichever path gives it. No mirror serves France: a
/// client there goes to the fallback.
struct World {
    app: TestApp,
    mirrors: Vec<FakeMirror>,
}

const SITES: [(&str, &str, f64, f64); 3] = [
    ("de-fra", "DE", 50.11, 8.68),
    ("us-nyc", "US", 40.71, -74.01),
    ("jp-tyo", "JP", 35.68, 139.69),
];

const FALLBACK: &str = "http://origin.test/pub/";

async fn world(limits: &str) -> World {
    let (mirrors, ms) = mirrors_at(&SITES, |_| "exclude_countries: [FR]").await;
    let top = format!("{TRUSTED_MANUAL_PROBES}\nfallback: {FALLBACK}\n{limits}");
    let app = TestApp::start(&config_yaml(&ms, &top)).await;
    World { app, mirrors }
}

impl World {
    fn addr(&self) -> SocketAddr {
        self.app.app.public_addr()
    }

    fn url_of(&self, name: &str) -> String {
        let i = SITES.iter().position(|s| s.0 == name).unwrap();
        self.mirrors[i].url()
    }
}

/// A `GET` from a client in Germany.
fn get(path: &str) -> String {
    request("GET", path, "")
}

/// A request from a client in Germany (through the trusted loopback proxy),
/// with `more_headers` (each line ending in CRLF).
fn request(method: &str, path: &str, more_headers: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: mirrors.test\r\nUser-Agent: raw\r\n\
         X-Forwarded-For: {DE}\r\n{more_headers}\r\n"
    )
}

/// The same request with `Content-Length: 0`: body framing, which the
/// direct path leaves to hyper.
fn for_hyper(request: &str) -> String {
    let (line, rest) = request.split_once("\r\n").unwrap();
    format!("{line}\r\nContent-Length: 0\r\n{rest}")
}

/// The response head with its `date` value blanked out (the one line that
/// may differ between two answers); there must be exactly one, in hyper's
/// format.
fn dateless_head(r: &RawResponse) -> String {
    let mut dates = 0;
    let head = std::str::from_utf8(&r.bytes[..r.head_len]).expect("an ASCII head");
    let mut out = String::new();
    for line in head.split_inclusive("\r\n") {
        match line.strip_prefix("date: ") {
            Some(value) => {
                dates += 1;
                let value = value.trim_end_matches("\r\n");
                assert!(
                    httpdate::parse_http_date(value).is_ok() && value.len() == 29,
                    "date {value:?}"
                );
                out.push_str("date: <date>\r\n");
            }
            None => out.push_str(line),
        }
    }
    assert_eq!(dates, 1, "one date line in:\n{head}");
    out
}

/// Sends `request` on a new connection and reads its answer; when the
/// request says `Connection: close`, also waits for the end of the stream.
async fn answer(addr: SocketAddr, request: &str) -> RawResponse {
    let mut c = RawConn::connect(addr).await;
    answer_on(&mut c, request).await
}

/// hyper's answer to `request`: given `Content-Length: 0`, and sent on a
/// connection that a `POST` already handed to hyper (either would do).
async fn hypers_answer(addr: SocketAddr, request: &str) -> RawResponse {
    let mut c = RawConn::connect(addr).await;
    c.send(b"POST / HTTP/1.1\r\nHost: mirrors.test\r\n\r\n")
        .await;
    assert_eq!(c.response(false).await.status, 405);
    answer_on(&mut c, &for_hyper(request)).await
}

async fn answer_on(c: &mut RawConn, request: &str) -> RawResponse {
    c.send(request.as_bytes()).await;
    let r = c.response(request.starts_with("HEAD ")).await;
    if request.contains("Connection: close") {
        c.eof().await;
    }
    r
}

#[tokio::test]
async fn both_paths_answer_with_the_same_bytes() {
    let w = world("").await;
    let iso = "/releases/1.0/demo.iso";
    let list = format!("{iso}?mirrorlist");
    let climbs = "/a/%2e%2e/%2e%2e/etc";
    let close = "Connection: close\r\n";
    let from_fr =
        format!("GET {iso} HTTP/1.1\r\nHost: mirrors.test\r\nX-Forwarded-For: {FR}\r\n\r\n");
    // The client is the last untrusted hop, whichever line it is on.
    let two_lines =
        format!("GET {iso} HTTP/1.1\r\nHost: mirrors.test\r\nX-Forwarded-For: {US}\r\nx-forwarded-for: {DE}\r\n\r\n");
    let cases: Vec<(&str, String, u16)> = vec![
        ("a redirect to a mirror", get(iso), 302),
        ("the same, as HEAD", request("HEAD", iso, ""), 302),
        ("the redirect, closing", request("GET", iso, close), 302),
        ("the HEAD, closing", request("HEAD", iso, close), 302),
        (
            "a path to clean up",
            get("//a/./b;v=1/~u/x!$&'()*+,=:@.iso?x"),
            302,
        ),
        ("forwarded on two lines", two_lines, 302),
        ("a path that climbs out", get(climbs), 400),
        (
            "the same, as HEAD, closing",
            request("HEAD", climbs, close),
            400,
        ),
        ("no hash without an origin index", get("/a.iso?sha256"), 404),
        ("the mirror list page", get(&list), 200),
        (
            "the mirror list page, as HEAD",
            request("HEAD", &list, ""),
            200,
        ),
        (
            "JSON, asked for",
            request("GET", iso, "Accept: application/json\r\n"),
            200,
        ),
        ("the fallback", from_fr.clone(), 302),
        (
            "the fallback, as HEAD",
            from_fr.replacen("GET", "HEAD", 1),
            302,
        ),
    ];
    for (what, req, status) in &cases {
        let direct = answer(w.addr(), req).await;
        let general = hypers_answer(w.addr(), req).await;
        assert_eq!(
            dateless_head(&direct),
            dateless_head(&general),
            "{what}: the direct path (left) and hyper (right) differ"
        );
        assert!(direct.body() == general.body(), "{what}: the bodies differ");
        // Equal, and right.
        assert_eq!(direct.status, *status, "{what}: {}", direct.text());
        if req.contains(close) {
            assert_eq!(direct.header("connection"), Some("close"), "{what}");
        }
        match *what {
            "a redirect to a mirror" | "forwarded on two lines" => {
                let loc = direct.header("location").unwrap();
                assert_eq!(loc, format!("{}releases/1.0/demo.iso", w.url_of("de-fra")));
                let links = direct.all("link");
                assert_eq!(links.len(), 3, "{}", direct.text());
                assert!(links[0].starts_with(&format!("<{}", w.url_of("us-nyc"))));
                assert!(links[1].starts_with(&format!("<{}", w.url_of("jp-tyo"))));
                assert!(links[2].contains("rel=describedby"), "{}", links[2]);
            }
            "the mirror list page" => {
                assert!(
                    direct.body().starts_with(b"<!DOCTYPE html>"),
                    "{}",
                    direct.text()
                );
            }
            "the mirror list page, as HEAD" => {
                assert!(direct.body().is_empty());
                let length: usize = direct.header("content-length").unwrap().parse().unwrap();
                assert!(length > 500, "the page's length, without the page");
            }
            "the fallback" => assert_eq!(
                direct.header("location"),
                Some(&*format!("{FALLBACK}releases/1.0/demo.iso"))
            ),
            _ => {}
        }
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let w = world("").await;
    let mut c = RawConn::connect(w.addr()).await;
    let paths = ["/one.iso", "/two/two.iso", "/three/3/three.iso"];
    let mut all = String::new();
    for (k, p) in paths.iter().enumerate() {
        let last = k == paths.len() - 1;
        all.push_str(&request(
            "GET",
            p,
            if last { "Connection: close\r\n" } else { "" },
        ));
    }
    // After `Connection: close`: never answered.
    all.push_str(&get("/after-close.iso"));
    c.send(all.as_bytes()).await;
    for p in paths {
        let r = c.response(false).await;
        assert_eq!(r.status, 302);
        let loc = r.header("location").unwrap();
        assert_eq!(loc, format!("{}{}", w.url_of("de-fra"), &p[1..]));
    }
    c.eof().await;
}

#[tokio::test]
async fn a_connection_moves_to_hyper_and_keeps_working() {
    let w = world("").await;
    let mut c = RawConn::connect(w.addr()).await;
    c.send(get("/first.iso").as_bytes()).await;
    let first = c.response(false).await;
    assert_eq!(first.status, 302);
    assert!(first.header("location").unwrap().ends_with("/first.iso"));

    c.send(request("POST", "/first.iso", "").as_bytes()).await;
    let post = c.response(false).await;
    assert_eq!(post.status, 405, "{}", post.text());
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    // hyper's now, to the end of the connection: still answered.
    c.send(get("/second.iso").as_bytes()).await;
    let second = c.response(false).await;
    assert_eq!(second.status, 302);
    assert!(second.header("location").unwrap().ends_with("/second.iso"));

    // The same in one write: the direct answers go out before hyper takes
    // over with the rest of what was read.
    let mut c = RawConn::connect(w.addr()).await;
    let mut all = get("/a.iso") + &request("HEAD", "/b.iso", "");
    all += &request("POST", "/c.iso", "");
    all += &request("GET", "/d.iso", "Connection: close\r\n");
    c.send(all.as_bytes()).await;
    for (path, head, status) in [
        ("/a.iso", false, 302),
        ("/b.iso", true, 302),
        ("/c.iso", false, 405),
        ("/d.iso", false, 302),
    ] {
        let r = c.response(head).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        if status == 302 {
            assert!(r.header("location").unwrap().ends_with(path));
        }
    }
    c.eof().await;
}

#[tokio::test]
async fn a_get_with_a_body_is_framed_by_hyper() {
    let w = world("").await;
    // A body that reads as a request: taken as a body, never answered.
    let smuggled = get("/smuggled.iso");

    let mut c = RawConn::connect(w.addr()).await;
    let first = request(
        "GET",
        "/first.iso",
        &format!("Content-Length: {}\r\n", smuggled.len()),
    );
    c.send(format!("{first}{smuggled}").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().ends_with("/first.iso"));
    // The next answer is for the next request, and nothing else comes.
    c.send(request("GET", "/third.iso", "Connection: close\r\n").as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(loc.ends_with("/third.iso"), "answered {loc}");
    c.eof().await;

    // Chunked: hyper reads on through a body the handler left unread only
    // as far as one read goes, never to the end of a chunked one, so it
    // ends the connection after the answer; the body is never a request.
    let mut c = RawConn::connect(w.addr()).await;
    let first = request("GET", "/first.iso", "Transfer-Encoding: chunked\r\n");
    let body = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    c.send(format!("{first}{body}").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().ends_with("/first.iso"));
    c.eof().await;
}

/// How late a header timeout's close may come: generous, as the machine
/// running the tests may be busy; a timer that never fires, or fires far
/// too late, still fails.
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// Waits for the server to close `c` at its header timeout: no sooner than
/// `timeout` after `before` (a moment before the server's timer started),
/// and no later than `timeout` and [`TIMEOUT_SLACK`] after `after` (when
/// the client last acted: the timer started about then, or before).
async fn closed_at_the_timeout(
    c: &mut RawConn,
    timeout: Duration,
    before: Instant,
    after: Instant,
) {
    let latest = after + timeout + TIMEOUT_SLACK;
    if tokio::time::timeout_at(latest.into(), c.eof())
        .await
        .is_err()
    {
        panic!("still open {TIMEOUT_SLACK:?} past the {timeout:?} header timeout");
    }
    let waited = before.elapsed();
    assert!(
        waited >= timeout,
        "closed after {waited:?}, before the timeout"
    );
}

#[tokio::test]
async fn a_new_connection_is_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    // Kept-alive connections have longer than the test's deadline.
    let w = world("limits:\n  header_timeout: 300ms\n  idle_timeout: 1h").await;

    // Silent from the start.
    let before = Instant::now();
    let mut c = RawConn::connect(w.addr()).await;
    closed_at_the_timeout(&mut c, timeout, before, Instant::now()).await;

    // A head begun and never finished.
    let before = Instant::now();
    let mut c = RawConn::connect(w.addr()).await;
    c.send(b"GET /a.iso HTTP/1.1\r\nHost: mirrors.test\r\n")
        .await;
    closed_at_the_timeout(&mut c, timeout, before, Instant::now()).await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let timeout = Duration::from_millis(300);
    // New connections have longer than the test's deadline.
    let w = world("limits:\n  header_timeout: 1h\n  idle_timeout: 300ms").await;

    // Silent after a direct answer.
    let mut c = RawConn::connect(w.addr()).await;
    c.send(get("/a.iso").as_bytes()).await;
    let before = Instant::now();
    assert_eq!(c.response(false).await.status, 302);
    closed_at_the_timeout(&mut c, timeout, before, Instant::now()).await;

    // A next head begun and never finished.
    let mut c = RawConn::connect(w.addr()).await;
    c.send(get("/a.iso").as_bytes()).await;
    let before = Instant::now();
    assert_eq!(c.response(false).await.status, 302);
    c.send(b"GET /b.iso HTTP/1.1\r\n").await;
    closed_at_the_timeout(&mut c, timeout, before, Instant::now()).await;

    // Silent after an answer from hyper: its timer, the same timeout.
    let mut c = RawConn::connect(w.addr()).await;
    c.send(request("POST", "/a.iso", "").as_bytes()).await;
    let before = Instant::now();
    assert_eq!(c.response(false).await.status, 405);
    closed_at_the_timeout(&mut c, timeout, before, Instant::now()).await;
}

#[tokio::test]
async fn a_head_handed_to_hyper_part_read_keeps_its_deadline() {
    let timeout = Duration::from_secs(6);
    let w = world("limits:\n  header_timeout: 6s").await;
    let before = Instant::now();
    let mut c = RawConn::connect(w.addr()).await;
    c.send(b"GET /slow.iso HTTP/1.1\r\nHost: mirrors.test\r\n")
        .await;
    // A slow client: most of the head's time gone before the rest comes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Past the direct path's 16 KiB, unfinished: hyper reads on from here.
    c.send(format!("X-Filler: {}\r\n", "a".repeat(20 * 1024)).as_bytes())
        .await;
    // Closed at 6 s from the start. A timer restarted at the hand-over
    // would close it at 11 s, past this bound.
    let latest = before + timeout + Duration::from_secs(4);
    if tokio::time::timeout_at(latest.into(), c.eof())
        .await
        .is_err()
    {
        panic!("still open 4 s past the head's 6 s deadline");
    }
    assert!(before.elapsed() >= timeout, "closed before the deadline");
}

#[tokio::test]
async fn http11_without_one_host_gets_400_on_both_paths() {
    let w = world("").await;
    let no_host = format!("GET /a.iso HTTP/1.1\r\nX-Forwarded-For: {DE}\r\n\r\n");
    let two_hosts = format!(
        "GET /a.iso HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nX-Forwarded-For: {DE}\r\n\r\n"
    );
    for (what, req) in [("no Host", &no_host), ("two Hosts", &two_hosts)] {
        let direct = answer(w.addr(), req).await;
        let general = hypers_answer(w.addr(), req).await;
        assert_eq!(direct.status, 400, "{what}: {}", direct.text());
        assert_eq!(dateless_head(&direct), dateless_head(&general), "{what}");
        assert_eq!(direct.body(), general.body(), "{what}");
        assert!(direct.text().contains("Host"), "{what}: {}", direct.text());
    }
    // HTTP/1.0 may leave it out (another test has it redirected), never send two.
    let old_two = two_hosts.replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(answer(w.addr(), &old_two).await.status, 400);
}

#[tokio::test]
async fn a_client_pipelining_without_reading_is_closed_at_the_send_timeout() {
    let w = world("limits:\n  send_timeout: 300ms").await;
    let mut s = support::slow::connect_small_buffer(w.addr()).await;
    // 20,000 requests at a time, whose answers (several MiB) are never
    // read, sent again and again: the server stops reading while its
    // answers wait for the client, so the writes stall too, until the
    // server gives up on the client and they fail.
    let all = get("/a.iso").repeat(20_000);
    within("the server to end the connection", async {
        use tokio::io::AsyncWriteExt;
        while s.write_all(all.as_bytes()).await.is_ok() {}
    })
    .await;
    support::slow::drained_to_the_end(&mut s).await;
}

#[tokio::test]
async fn a_client_that_never_reads_a_proxied_file_is_let_go_with_its_mirror() {
    use tokio::io::AsyncWriteExt;
    let mirror = BigMirror::start(1 << 30).await;
    let m = [M::de_fra(mirror.url())];
    let top = format!("{TRUSTED_MANUAL_PROBES}\nmode: proxy\nlimits:\n  send_timeout: 300ms");
    let t = TestApp::start(&config_yaml(&m, &top)).await;
    let addr = t.app.public_addr();
    for (what, req) in [
        ("the direct path", get("/big.bin")),
        ("hyper", for_hyper(&get("/big.bin"))),
    ] {
        let produced = mirror.produced();
        let mut s = support::slow::connect_small_buffer(addr).await;
        s.write_all(req.as_bytes()).await.unwrap();
        poll_until(&format!("{what}: the transfer to start"), || {
            let started = mirror.produced() > produced;
            async move { started }
        })
        .await;
        // The mirror's connection ends: dropped, not kept for reuse.
        mirror.all_closed().await;
        // And the client's.
        support::slow::drained_to_the_end(&mut s).await;
        assert!(
            mirror.produced() - produced < 1 << 30,
            "{what}: the whole file went out"
        );
    }
}

/// A request for `path` with `n` more headers.
fn with_headers(path: &str, n: usize) -> String {
    let more: String = (0..n).map(|i| format!("X-Extra-{i}: {i}\r\n")).collect();
    request("GET", path, &more)
}

#[tokio::test]
async fn heads_past_the_direct_limits_get_hypers_answers() {
    let w = world("").await;
    // 40 KiB: past the direct path's 16 KiB (which stops reading a head
    // there, its buffer then at most 32 KiB), within hyper's 64 KiB.
    let mut c = RawConn::connect(w.addr()).await;
    let filler = format!("X-Filler: {}\r\n", "a".repeat(40 * 1024));
    c.send(request("GET", "/long.iso", &filler).as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().ends_with("/long.iso"));
    // Still served after it.
    c.send(get("/after.iso").as_bytes()).await;
    let r = c.response(false).await;
    assert!(r.header("location").unwrap().ends_with("/after.iso"));

    // 80 headers: past the direct path's 64, within hyper's 100.
    let mut c = RawConn::connect(w.addr()).await;
    c.send(with_headers("/many.iso", 80).as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().ends_with("/many.iso"));

    // Past hyper's 100 headers: 431, and the connection ends.
    let mut c = RawConn::connect(w.addr()).await;
    c.send(with_headers("/too-many.iso", 120).as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(r.header("location"), None);
    c.eof().await;

    // 256 KiB: past hyper's 64 KiB, refused before it is all read: 431, and
    // the connection ends, reset if the rest of the head was never read.
    let mut c = RawConn::connect(w.addr()).await;
    let filler = format!("X-Filler: {}\r\n", "a".repeat(256 * 1024));
    c.send_until_closed(request("GET", "/longer.iso", &filler).as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 431, "{}", r.text());
    c.closed().await;
}

/// A request for `path` exactly `len` bytes long, head and all, made so by
/// one long header.
fn head_of_len(path: &str, len: usize) -> String {
    let bare = request("GET", path, "X-Filler: \r\n").len();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(len - bare));
    let head = request("GET", path, &filler);
    assert_eq!(head.len(), len);
    head
}

#[tokio::test]
async fn no_head_over_64_kib_is_served_even_in_one_read() {
    let w = world("").await;
    // Exactly 64 KiB, in one write: served (by hyper: past the direct 16 KiB).
    let mut c = RawConn::connect(w.addr()).await;
    c.send(head_of_len("/limit.iso", 64 * 1024).as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(r.header("location").unwrap().ends_with("/limit.iso"));

    // One byte more, and about 100 KiB: each in one write, so that one read
    // may bring hyper the whole head; refused all the same, never answered.
    for len in [64 * 1024 + 1, 100 * 1024] {
        let mut c = RawConn::connect(w.addr()).await;
        c.send_until_closed(head_of_len("/over.iso", len).as_bytes())
            .await;
        let r = c.response(false).await;
        assert_eq!(r.status, 431, "{len} bytes: {}", r.text());
        assert_eq!(r.header("location"), None);
        c.closed().await;
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_without_waiting_for_the_grace() {
    // Both longer than the test's deadline: only shutdown can close them in time.
    let w = world("limits:\n  header_timeout: 1h\n  shutdown_grace: 1h").await;
    // One idle after a direct answer, one idle after hyper's.
    let mut direct = RawConn::connect(w.addr()).await;
    direct.send(get("/a.iso").as_bytes()).await;
    assert_eq!(direct.response(false).await.status, 302);
    let mut general = RawConn::connect(w.addr()).await;
    general.send(request("POST", "/a.iso", "").as_bytes()).await;
    assert_eq!(general.response(false).await.status, 405);

    let World { app, mirrors: _up } = w;
    let shutdown = tokio::spawn(app.app.shutdown());
    direct.eof().await;
    general.eof().await;
    // Done within the deadline, far under the grace: nothing waited for it.
    within("shutdown", shutdown).await.unwrap();
}

#[tokio::test]
async fn http10_and_absolute_targets_go_to_hyper() {
    let w = world("").await;
    let de_fra = w.url_of("de-fra");

    let mut c = RawConn::connect(w.addr()).await;
    c.send(format!("GET /old.iso HTTP/1.0\r\nX-Forwarded-For: {DE}\r\n\r\n").as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!((r.version, r.status), (0, 302), "{}", r.text());
    assert_eq!(r.header("location"), Some(&*format!("{de_fra}old.iso")));
    // HTTP/1.0 without keep-alive: closed after the answer.
    c.eof().await;

    let mut c = RawConn::connect(w.addr()).await;
    c.send(
        format!(
            "GET http://mirrors.test/absolute.iso HTTP/1.1\r\nHost: mirrors.test\r\n\
             X-Forwarded-For: {DE}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.response(false).await;
    assert_eq!((r.version, r.status), (1, 302), "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(&*format!("{de_fra}absolute.iso"))
    );
}

/// A mirror that answers every request with a chunked body and no length,
/// as a mirror streaming a generated file does; keeps connections open.
async fn chunked_mirror() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = buf.starts_with(b"HEAD ");
                    buf.drain(..end + 4);
                    let mut answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                        transfer-encoding: chunked\r\n\r\n"
                        .to_vec();
                    if !head {
                        answer.extend_from_slice(b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n");
                    }
                    if s.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn proxied_answers_are_the_same_bytes_on_both_paths() {
    let w = world("mode: proxy").await;
    let iso = "/releases/1.0/demo.iso";
    let close = "Connection: close\r\n";
    for (what, req) in [
        ("a proxied file", get(iso)),
        ("the same, as HEAD", request("HEAD", iso, "")),
        ("the same, closing", request("GET", iso, close)),
    ] {
        let direct = answer(w.addr(), &req).await;
        let general = hypers_answer(w.addr(), &req).await;
        assert_eq!(
            dateless_head(&direct),
            dateless_head(&general),
            "{what}: the direct path (left) and hyper (right) differ"
        );
        assert_eq!(direct.body(), general.body(), "{what}");
        assert_eq!(direct.status, 200, "{what}: {}", direct.text());
        assert_eq!(direct.header("via"), Some("1.1 mirrorgate"), "{what}");
        let want: &[u8] = if req.starts_with("HEAD") {
            b""
        } else {
            b"fake mirror\n"
        };
        assert_eq!(direct.body(), want, "{what}");
    }

    // A mirror that sends no length: chunks on both paths, and the
    // connection goes on after the last one.
    let mirror = chunked_mirror().await;
    let m = [M::de_fra(format!("http://{mirror}/pub/"))];
    let t = TestApp::start(&config_yaml(
        &m,
        &format!("{TRUSTED_MANUAL_PROBES}\nmode: proxy"),
    ))
    .await;
    let addr = t.app.public_addr();
    let direct = answer(addr, &get(iso)).await;
    let general = hypers_answer(addr, &get(iso)).await;
    assert_eq!(dateless_head(&direct), dateless_head(&general));
    assert_eq!(direct.header("transfer-encoding"), Some("chunked"));
    assert_eq!(direct.body(), b"hello, world");
    assert_eq!(general.body(), b"hello, world");
    let mut c = RawConn::connect(addr).await;
    for _ in 0..2 {
        let r = answer_on(&mut c, &get(iso)).await;
        assert_eq!((r.status, r.body()), (200, &b"hello, world"[..]));
    }
    let r = answer_on(&mut c, &request("HEAD", iso, close)).await;
    assert_eq!(r.status, 200);
    assert!(r.body().is_empty());
}
