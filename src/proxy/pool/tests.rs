use super::*;
use crate::proxy::h1::MAX_INTERIM;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A mirror that answers `ok`, counts connections and reports when each ends.
async fn mirror() -> (
    std::net::SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    mpsc::UnboundedReceiver<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended, rx) = mpsc::unbounded_channel();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ended = ended.clone();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                let _ = ended.send(());
            });
        }
    });
    (addr, accepted, rx)
}

async fn get(pool: &Pool, addr: std::net::SocketAddr) {
    let (status, body) = fetch(pool, addr).await.unwrap();
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(&body[..], b"ok");
}

/// A `GET /f` through the pool: the answer's status and whole body.
async fn fetch(
    pool: &Pool,
    addr: std::net::SocketAddr,
) -> Result<(http::StatusCode, Bytes), UpstreamError> {
    let uri: Uri = format!("http://{addr}/f").parse().unwrap();
    let resp = pool.send(&Method::GET, &uri, &HeaderMap::new()).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Waits until the connection is put back (at the end of its answer).
async fn back_in(pool: &Pool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while pool.idle_count() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the connection goes back to the pool");
}

#[tokio::test]
async fn an_idle_connection_is_closed_without_another_request() {
    let (addr, _, mut ended) = mirror().await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_millis(200));
    get(&pool, addr).await;
    back_in(&pool).await;
    // No request follows: only the sweep can close it.
    tokio::time::timeout(Duration::from_secs(20), ended.recv())
        .await
        .expect("the mirror sees the idle connection closed")
        .unwrap();
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn a_connection_is_reused_while_fresh() {
    let (addr, accepted, mut ended) = mirror().await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
    for _ in 0..3 {
        get(&pool, addr).await;
        // The next request finds it idle.
        back_in(&pool).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(ended.try_recv().is_err(), "no connection was closed");
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// What a scripted mirror does with one request on a connection.
enum Step {
    /// Reads the request, writes these bytes.
    Answer(&'static [u8]),
    /// Reads the request, closes the connection without a byte.
    Drop,
}

/// A mirror on raw TCP: its n-th connection plays `scripts[n]` (and is then
/// closed); it counts connections and requests.
async fn scripted(
    scripts: Vec<Vec<Step>>,
) -> (
    std::net::SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        for script in scripts {
            let (mut stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                for step in script {
                    if !read_request(&mut stream).await {
                        return;
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    match step {
                        // The client may have stopped reading (an endless head).
                        Step::Answer(bytes) => {
                            if stream.write_all(bytes).await.is_err() {
                                return;
                            }
                        }
                        Step::Drop => return,
                    }
                }
            });
        }
    });
    (addr, accepted, requests)
}

/// Reads one request head; false when the connection closed first.
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}

fn count(c: &std::sync::atomic::AtomicUsize) -> usize {
    c.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_request_an_idle_connection_dropped_unanswered_is_sent_again() {
    // The first connection answers once, then drops the next request as a
    // mirror closing an idle connection at the wrong moment does.
    let (addr, accepted, requests) = scripted(vec![
        vec![Step::Answer(OK), Step::Drop],
        vec![Step::Answer(OK)],
    ])
    .await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
    get(&pool, addr).await;
    assert_eq!(pool.idle_count(), 1);
    get(&pool, addr).await;
    assert_eq!(count(&accepted), 2);
    assert_eq!(count(&requests), 3);
}

#[tokio::test]
async fn a_request_on_a_new_connection_is_never_sent_twice() {
    let (addr, accepted, _) = scripted(vec![vec![Step::Drop], vec![Step::Answer(OK)]]).await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
    assert_eq!(fetch(&pool, addr).await.err(), Some(UpstreamError::Other));
    assert_eq!(count(&accepted), 1);
    // The second connection was left for the next request.
    get(&pool, addr).await;
    assert_eq!(count(&accepted), 2);
}

#[tokio::test]
async fn an_idle_connection_the_mirror_spoke_on_is_not_used() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, mut go_rx) = mpsc::unbounded_channel::<()>();
    let (done, mut done_rx) = mpsc::unbounded_channel::<()>();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        a.fetch_add(1, Ordering::SeqCst);
        assert!(read_request(&mut first).await);
        first.write_all(OK).await.unwrap();
        // Once told, an answer nobody asked for (as some servers send
        // before closing an idle connection), and the close.
        go_rx.recv().await.unwrap();
        first
            .write_all(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        drop(first);
        done.send(()).unwrap();
        let (mut second, _) = listener.accept().await.unwrap();
        a.fetch_add(1, Ordering::SeqCst);
        assert!(read_request(&mut second).await);
        second.write_all(OK).await.unwrap();
    });
    // Checked however briefly idle: the mirror here speaks at once.
    let pool = Pool::with_peek_after(
        HttpConnector::new(),
        4,
        Duration::from_secs(3600),
        Duration::ZERO,
    );
    get(&pool, addr).await;
    assert_eq!(pool.idle_count(), 1);
    go.send(()).unwrap();
    done_rx.recv().await.unwrap();
    // Not the 408: a new connection's answer.
    get(&pool, addr).await;
    assert_eq!(count(&accepted), 2);
}

#[tokio::test]
async fn a_connection_is_kept_only_when_its_answer_ended_cleanly() {
    let close: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
    let extra: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    let http10: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let no_length: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nok";
    for answer in [close, extra, http10, no_length] {
        // Each connection closes after its answer (as one read to the close
        // must); kept, it would be in the pool until next used.
        let (addr, accepted, _) =
            scripted(vec![vec![Step::Answer(answer)], vec![Step::Answer(OK)]]).await;
        let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
        get(&pool, addr).await;
        assert_eq!(pool.idle_count(), 0, "{}", String::from_utf8_lossy(answer));
        get(&pool, addr).await;
        assert_eq!(count(&accepted), 2, "{}", String::from_utf8_lossy(answer));
    }
}

#[tokio::test]
async fn chunks_interim_answers_and_head_requests_keep_the_connection() {
    let chunked: &[u8] =
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\no\r\n1;x=y\r\nk\r\n0\r\nx-t: 1\r\n\r\n";
    let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n";
    let (addr, accepted, requests) = scripted(vec![vec![
        Step::Answer(chunked),
        Step::Answer(head),
        Step::Answer(OK),
    ]])
    .await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
    get(&pool, addr).await;
    let uri: Uri = format!("http://{addr}/f").parse().unwrap();
    let resp = pool
        .send(&Method::HEAD, &uri, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(resp.headers()[http::header::CONTENT_LENGTH], "1000");
    assert!(resp.body().is_end_stream());
    // Back at once: a HEAD answer has no body to wait for.
    assert_eq!(pool.idle_count(), 1);
    drop(resp);
    get(&pool, addr).await;
    assert_eq!(count(&accepted), 1);
    assert_eq!(count(&requests), 3);
}

#[tokio::test]
async fn broken_answers_are_errors() {
    let short: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok";
    let (addr, _, _) = scripted(vec![vec![Step::Answer(short)]]).await;
    let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
    assert_eq!(fetch(&pool, addr).await.err(), Some(UpstreamError::Body));
    assert_eq!(pool.idle_count(), 0);

    for bad in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    ] {
        refused(&pool, bad).await;
    }
    // Interim answers without end are not read forever.
    refused(
        &pool,
        leak(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".repeat(MAX_INTERIM + 1)),
    )
    .await;
    // A head over the limit is refused even when it arrives whole.
    refused(
        &pool,
        leak(
            [
                b"HTTP/1.1 200 OK\r\nx-filler: ".as_slice(),
                &b"a".repeat(crate::proxy::h1::MAX_HEAD),
                b"\r\ncontent-length: 2\r\n\r\nok",
            ]
            .concat(),
        ),
    )
    .await;
    // A head that never ends is not buffered past the limit.
    refused(
        &pool,
        leak(
            [
                b"HTTP/1.1 200 OK\r\n".as_slice(),
                &b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                    .repeat(2000),
            ]
            .concat(),
        ),
    )
    .await;
}

/// A scripted answer made at run time, for the life of the test binary.
fn leak(answer: Vec<u8>) -> &'static [u8] {
    Box::leak(answer.into_boxed_slice())
}

/// A mirror whose one answer is `answer`: the pool refuses it as malformed.
async fn refused(pool: &Pool, answer: &'static [u8]) {
    let (addr, _, _) = scripted(vec![vec![Step::Answer(answer)]]).await;
    let shown = String::from_utf8_lossy(&answer[..answer.len().min(80)]);
    assert_eq!(
        fetch(pool, addr).await.err(),
        Some(UpstreamError::Other),
        "{shown}"
    );
}

#[test]
fn the_request_head_is_written_in_origin_form_with_host() {
    let mut h = HeaderMap::new();
    h.insert(header::RANGE, "bytes=0-9".parse().unwrap());
    h.insert(header::VIA, "1.1 mirrorgate".parse().unwrap());
    let uri: Uri = "http://u:p@m.example:8080/pub/a%20b?x=1".parse().unwrap();
    let head = request_head(&Method::GET, &uri, &h);
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "GET /pub/a%20b?x=1 HTTP/1.1\r\nhost: m.example:8080\r\nrange: bytes=0-9\r\nvia: 1.1 mirrorgate\r\n\r\n"
    );
    // A Host given is the one sent.
    h.insert(header::HOST, "other.example".parse().unwrap());
    let uri: Uri = "http://m.example/".parse().unwrap();
    let head = String::from_utf8(request_head(&Method::HEAD, &uri, &h)).unwrap();
    assert!(head.starts_with("HEAD / HTTP/1.1\r\n"), "{head}");
    assert_eq!(head.matches("host:").count(), 1, "{head}");
    assert!(head.contains("host: other.example\r\n"), "{head}");
}
