//! Clients that do not keep up: one that never reads what it is sent (a
//! small receive buffer, so the server's writes stall early), and the means
//! to see a server end such a connection without reading it like a client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::within;

/// A connection whose receive buffer is as small as the kernel allows
/// (4 KiB asked): a client that reads nothing fills it at once.
pub async fn connect_small_buffer(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    // Before connecting: the window offered in the handshake follows it.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    within("a connection", socket.connect(addr))
        .await
        .expect("connect")
}

/// Reads and drops whatever comes until the server ends the stream (or
/// resets it: it closed with bytes of ours unread), within the deadline.
pub async fn drained_to_the_end(stream: &mut TcpStream) {
    within("the server to end the connection", async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
    .await
}

/// Sends `start` (a request head begun), then one byte more of it every
/// `every`, never finishing it, until the server ends the connection (a
/// read gives its end, or a write fails); within the deadline.
pub async fn drip_until_closed(addr: SocketAddr, start: &str, every: Duration) {
    let mut s = within("a connection", TcpStream::connect(addr))
        .await
        .expect("connect");
    within("the server to end a dripping connection", async {
        if s.write_all(start.as_bytes()).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        let mut chunk = [0u8; 1024];
        loop {
            tokio::select! {
                r = s.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => return,
                    // An answer (a 408, say) before the end is still an end coming.
                    Ok(_) => {}
                },
                _ = tick.tick() => {
                    // One more byte of a header value.
                    if s.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}
