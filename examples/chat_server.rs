//! A line-based chat server on `weft::sync::broadcast`: each client's lines go to every
//! other client, prefixed with the sender's address.
//!
//! ```text
//! cargo run --example chat_server                          # self-test: server and clients
//! cargo run --example chat_server -- --listen 127.0.0.1:7001   # serve until Ctrl-C
//! ```
//!
//! With no arguments it serves on 127.0.0.1 (a port the kernel picks), connects three
//! clients, has each say one line, checks that each hears the other two, prints what they
//! heard and stops. Try the served form with `nc 127.0.0.1 7001` in two terminals. The
//! same program written against tokio is in `docs/porting-from-tokio.md`.

use std::io;
use std::net::SocketAddr;

use weft::net::{TcpListener, TcpStream};
use weft::sync::broadcast;

/// A chat line and who said it.
type Said = (SocketAddr, String);

/// Splits complete lines off the front of `pending`.
fn take_lines(pending: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..end]);
        lines.push(text.trim_end_matches('\r').to_string());
    }
    lines
}

/// One client: its lines go to the channel; everyone else's come back to it.
async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    tx: broadcast::Sender<Said>,
) -> io::Result<()> {
    let mut rx = tx.subscribe();
    let (reader, writer) = stream.into_split();
    let (r, _) = writer
        .write_all(format!("welcome {peer}\n").into_bytes())
        .await;
    r?;
    let forward = weft::spawn(async move {
        loop {
            match rx.recv().await {
                Ok((from, line)) if from != peer => {
                    let (r, _) = writer
                        .write_all(format!("{from}: {line}\n").into_bytes())
                        .await;
                    if r.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut pending = Vec::new();
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        let (n, b) = reader.read(buf).await;
        match n {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        pending.extend_from_slice(&b);
        for line in take_lines(&mut pending) {
            // Err means no one listens (this client's own receiver is gone): drop the line.
            let _ = tx.send((peer, line));
        }
        buf = b;
    };
    forward.abort();
    end
}

/// Accepts clients forever, one task each, all on one channel.
async fn serve(listener: TcpListener) -> io::Result<()> {
    let (tx, _) = broadcast::channel::<Said>(256);
    loop {
        let (stream, peer) = listener.accept().await?;
        let tx = tx.clone();
        weft::spawn(async move {
            if let Err(e) = session(stream, peer, tx).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// A test client: reads lines until it has `want` of them.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
    lines: Vec<String>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let mut c = Client {
            stream: TcpStream::connect(addr).await?,
            pending: Vec::new(),
            lines: Vec::new(),
        };
        c.read_lines(1).await?; // the welcome: the server has subscribed us
        c.lines.clear();
        Ok(c)
    }

    async fn say(&self, line: &str) -> io::Result<()> {
        let (r, _) = self
            .stream
            .write_all(format!("{line}\n").into_bytes())
            .await;
        r
    }

    async fn read_lines(&mut self, want: usize) -> io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        while self.lines.len() < want {
            let (n, b) = self.stream.read(buf).await;
            if n? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server hung up",
                ));
            }
            self.pending.extend_from_slice(&b);
            self.lines.extend(take_lines(&mut self.pending));
            buf = b;
        }
        Ok(())
    }
}

async fn self_test() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("chat server on {addr}");
    weft::spawn(serve(listener));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(addr).await?);
    }
    for (i, c) in clients.iter().enumerate() {
        c.say(&format!("hello from client {i}")).await?;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.read_lines(2).await?;
        let me = c.stream.local_addr()?;
        for line in &c.lines {
            println!("client {i} heard {line}");
            assert!(
                !line.starts_with(&me.to_string()),
                "client {i} heard itself"
            );
        }
        let mut heard: Vec<&str> = c
            .lines
            .iter()
            .map(|l| l.rsplit(": ").next().unwrap())
            .collect();
        heard.sort();
        let mut want: Vec<String> = (0..3)
            .filter(|&j| j != i)
            .map(|j| format!("hello from client {j}"))
            .collect();
        want.sort();
        assert_eq!(heard, want, "client {i}");
    }
    println!("every client heard every other client");
    Ok(())
}

#[weft::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => self_test().await,
        [flag, addr] if flag == "--listen" => {
            let listener = TcpListener::bind(addr.as_str()).await?;
            println!("chat server on {}; Ctrl-C stops it", listener.local_addr()?);
            weft::select! {
                r = serve(listener) => r,
                r = weft::signal::ctrl_c() => {
                    println!("stopping");
                    r
                }
            }
        }
        _ => {
            eprintln!("usage: chat_server [--listen ADDR]");
            std::process::exit(2);
        }
    }
}
