//! A follower's connection to the leader, used to forward commands that need
//! the leader on behalf of one client connection.
//!
//! One upstream connection per client connection keeps that client's commands
//! in order end to end, and lets a pipelining client keep its pipeline full.

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{Frame, ReplyDecoder};

/// Internal command that marks a connection as carrying forwarded commands:
/// the receiver must never forward them again (no forwarding loops when two
/// nodes briefly disagree about who leads).
pub const FORWARDED_MARKER: &[u8] = b"SESHAT.FORWARDED";

/// How long to wait for the leader's reply to one forwarded command. The
/// leader bounds its own waits (write timeout), so this only catches a leader
/// that stopped answering altogether.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An open connection to the leader's RESP port.
#[derive(Debug)]
pub struct Upstream {
    addr: String,
    stream: TcpStream,
    out: BytesMut,
    inbuf: BytesMut,
    decoder: ReplyDecoder,
}

fn put_request(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.put_slice(format!("${}\r\n", a.len()).as_bytes());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

impl Upstream {
    /// Connects to `addr`, switches to RESP3 (full reply fidelity), authenticates
    /// when a password is set, and marks the connection as forwarded.
    pub async fn connect(addr: &str, password: Option<&str>) -> io::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to leader {addr} timed out")))??;
        stream.set_nodelay(true)?;
        let mut up = Upstream {
            addr: addr.to_string(),
            stream,
            out: BytesMut::new(),
            inbuf: BytesMut::with_capacity(4096),
            decoder: ReplyDecoder::default(),
        };
        match password {
            Some(p) => put_request(&mut up.out, &[b"HELLO", b"3", b"AUTH", b"default", p.as_bytes()]),
            None => put_request(&mut up.out, &[b"HELLO", b"3"]),
        }
        put_request(&mut up.out, &[FORWARDED_MARKER]);
        for _ in 0..2 {
            if let Frame::Error(e) = up.recv().await? {
                return Err(io::Error::other(format!("leader {addr} refused the forwarding handshake: {e}")));
            }
        }
        Ok(up)
    }

    /// The leader address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Queues a command (sent with the next [`Upstream::flush`] or [`Upstream::recv`]).
    pub fn queue(&mut self, args: &[Bytes]) {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
        put_request(&mut self.out, &refs);
    }

    /// Sends every queued command.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next reply, in command order.
    pub async fn recv(&mut self) -> io::Result<Frame> {
        self.flush().await?;
        let read = async {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.inbuf).map_err(io::Error::other)? {
                    return Ok(frame);
                }
                if self.stream.read_buf(&mut self.inbuf).await? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "leader closed the connection"));
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, read)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "leader did not reply in time"))?
    }
}
