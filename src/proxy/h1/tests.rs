use super::*;

/// Everything `framing` yields for `input`, given in two pieces split at
/// `at`: the body's bytes, or the error.
fn decode_split(
    framing: Framing,
    input: &[u8],
    at: usize,
) -> Result<(Vec<u8>, Framing), UpstreamError> {
    let mut f = framing;
    let mut buf = BytesMut::from(&input[..at]);
    let mut out = Vec::new();
    while let Some(d) = f.take(&mut buf)? {
        out.extend_from_slice(&d);
    }
    buf.extend_from_slice(&input[at..]);
    while let Some(d) = f.take(&mut buf)? {
        out.extend_from_slice(&d);
    }
    Ok((out, f))
}

const CHUNKED: &[u8] =
    b"5;name=value\r\nhello\r\n6\r\n world\r\nA\r\n, chunked!\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n";

#[test]
fn a_chunked_body_is_decoded_wherever_the_reads_split_it() {
    for at in 0..=CHUNKED.len() {
        let (body, f) = decode_split(Framing::Chunked(Chunk::Size), CHUNKED, at).unwrap();
        assert_eq!(body, b"hello world, chunked!", "split at {at}");
        assert!(f.is_done(), "split at {at}");
    }
}

#[test]
fn a_chunked_body_stops_at_its_end() {
    let mut input = CHUNKED.to_vec();
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    let mut f = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::from(&input[..]);
    while f.take(&mut buf).unwrap().is_some() {}
    assert!(f.is_done());
    // What follows is left for whoever reads next (here: a reason to close).
    assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
}

#[test]
fn malformed_chunks_are_refused() {
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff\r\n",
    ] {
        let r = decode_split(Framing::Chunked(Chunk::Size), bad, bad.len());
        assert_eq!(
            r.err(),
            Some(UpstreamError::Body),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Endless chunk extensions or trailers are not buffered forever.
    let long_line = [b"5;".as_slice(), &[b'x'; MAX_CHUNK_LINE]].concat();
    let r = decode_split(Framing::Chunked(Chunk::Size), &long_line, long_line.len());
    assert_eq!(r.err(), Some(UpstreamError::Body));
    let mut trailers = b"0\r\n".to_vec();
    while trailers.len() <= MAX_TRAILERS + 64 {
        trailers.extend_from_slice(b"X-Trailer: aaaaaaaaaaaaaaaa\r\n");
    }
    let r = decode_split(Framing::Chunked(Chunk::Size), &trailers, trailers.len());
    assert_eq!(r.err(), Some(UpstreamError::Body));
}

#[test]
fn a_length_body_takes_its_length_and_no_more() {
    let (body, f) = decode_split(Framing::Length(5), b"helloHTTP", 3).unwrap();
    assert_eq!(body, b"hello");
    assert!(f.is_done());
    let (body, f) = decode_split(Framing::Length(10), b"hello", 2).unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(f, Framing::Length(5));
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn framing_follows_rfc_9112() {
    let ok = StatusCode::OK;
    let get = Method::GET;
    let frame =
        |m: &Method, s: StatusCode, pairs: &[(&str, &str)]| framing(m, s, &mut headers(pairs));
    assert_eq!(
        frame(&get, ok, &[("content-length", "12")]),
        Some((Framing::Length(12), true))
    );
    assert_eq!(
        frame(&get, ok, &[("content-length", "12, 12")]),
        Some((Framing::Length(12), true))
    );
    assert_eq!(
        frame(
            &get,
            ok,
            &[("content-length", "12"), ("content-length", "12")]
        ),
        Some((Framing::Length(12), true))
    );
    assert_eq!(
        frame(&get, ok, &[("content-length", "0")]),
        Some((Framing::Done, true))
    );
    for bad in [
        "12, 13",
        "-1",
        "+5",
        "0x10",
        "",
        "99999999999999999999",
        "1 2",
    ] {
        assert_eq!(frame(&get, ok, &[("content-length", bad)]), None, "{bad:?}");
    }
    // No length: to the close, and the connection cannot be reused.
    assert_eq!(frame(&get, ok, &[]), Some((Framing::Close, false)));
    // No body, whatever the headers say.
    assert_eq!(
        frame(&Method::HEAD, ok, &[("content-length", "12")]),
        Some((Framing::Done, true))
    );
    for s in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        assert_eq!(
            frame(&get, s, &[("content-length", "12")]),
            Some((Framing::Done, true))
        );
    }
    assert_eq!(
        frame(&get, ok, &[("transfer-encoding", "gzip, chunked")]),
        Some((Framing::Chunked(Chunk::Size), true))
    );
    assert_eq!(
        frame(&get, ok, &[("transfer-encoding", "chunked, gzip")]),
        Some((Framing::Close, false))
    );
    // Chunks decide the length; the stray length is dropped, and the
    // connection, which may be out of step, is not reused.
    let mut h = headers(&[("transfer-encoding", "chunked"), ("content-length", "5")]);
    assert_eq!(
        framing(&get, ok, &mut h),
        Some((Framing::Chunked(Chunk::Size), false))
    );
    assert!(h.get(header::CONTENT_LENGTH).is_none());
}

#[test]
fn close_is_read_from_any_connection_token() {
    assert!(asks_close(&headers(&[("connection", "Close")])));
    assert!(asks_close(&headers(&[("connection", "x-private, close")])));
    assert!(!asks_close(&headers(&[("connection", "keep-alive")])));
    assert!(!asks_close(&headers(&[])));
}

#[test]
fn an_answer_reads_the_same_however_it_arrives() {
    let chunked =
        [b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".as_slice(), CHUNKED].concat();
    let length = b"HTTP/1.1 206 Partial Content\r\ncontent-length: 5\r\n\r\nhello".to_vec();
    let to_close = b"HTTP/1.0 200 OK\r\n\r\nuntil the close".to_vec();
    for (input, expected) in [
        (chunked, Some((200, b"hello world, chunked!".to_vec()))),
        (length, Some((206, b"hello".to_vec()))),
        (to_close, Some((200, b"until the close".to_vec()))),
        // Short: the close breaks a body of known length.
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello".to_vec(),
            None,
        ),
    ] {
        for step in 1..=input.len() {
            assert_eq!(read_answer(&input, step), expected, "step {step}");
        }
    }
}

proptest::proptest! {
    /// Any bytes: no panic, and the same result whatever the reads' size.
    #[test]
    fn any_answer_reads_the_same_in_any_pieces(
        data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        step in 1usize..64,
    ) {
        proptest::prop_assert_eq!(read_answer(&data, step), read_answer(&data, usize::MAX));
    }

    /// A chunked body of any chunks decodes to its bytes, in any pieces.
    #[test]
    fn any_chunked_body_decodes_to_its_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..8),
        ext in proptest::bool::ANY,
        step in 1usize..32,
    ) {
        let mut input = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let mut expected = Vec::new();
        for c in &chunks {
            input.extend_from_slice(format!("{:x}", c.len()).as_bytes());
            if ext {
                input.extend_from_slice(b";a=b");
            }
            input.extend_from_slice(b"\r\n");
            input.extend_from_slice(c);
            input.extend_from_slice(b"\r\n");
            expected.extend_from_slice(c);
        }
        input.extend_from_slice(b"0\r\n\r\n");
        proptest::prop_assert_eq!(read_answer(&input, step), Some((200, expected)));
    }
}
