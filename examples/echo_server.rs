//! A TCP echo server: every byte a client sends comes back to it.
//!
//! ```text
//! cargo run --example echo_server                          # self-test: server and clients
//! cargo run --example echo_server -- --listen 127.0.0.1:7000   # serve until Ctrl-C
//! ```
//!
//! With no arguments it serves on 127.0.0.1 (a port the kernel picks), runs a few clients
//! against itself, checks what each gets back, prints it and stops. The same program
//! written against tokio is in `docs/porting-from-tokio.md`.

use std::io;

use weft::net::{TcpListener, TcpStream};

/// Echoes one connection until the client closes it.
async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (n, b) = stream.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let (r, b) = stream.write_all(b).await;
        r?;
        buf = b;
    }
}

/// Accepts connections forever, one task each.
async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        weft::spawn(async move {
            if let Err(e) = echo(stream).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// One client: sends `line`, reads the echo.
async fn client(addr: std::net::SocketAddr, line: String) -> io::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let sent = line.into_bytes();
    let len = sent.len();
    let (r, _) = stream.write_all(sent).await;
    r?;
    let (r, got) = stream.read_exact(Vec::with_capacity(len)).await;
    r?;
    String::from_utf8(got).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn self_test() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("echo server on {addr}");
    weft::spawn(serve(listener));
    let clients: Vec<_> = (1..=4)
        .map(|i| weft::spawn(client(addr, format!("hello from client {i}"))))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let got = c.await.expect("client task")?;
        assert_eq!(got, format!("hello from client {}", i + 1));
        println!("client {} got back: {got}", i + 1);
    }
    println!("every client got its bytes back");
    Ok(())
}

#[weft::main]
async fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => self_test().await,
        [flag, addr] if flag == "--listen" => {
            let listener = TcpListener::bind(addr.as_str()).await?;
            println!("echo server on {}; Ctrl-C stops it", listener.local_addr()?);
            weft::select! {
                r = serve(listener) => r,
                r = weft::signal::ctrl_c() => {
                    println!("stopping");
                    r
                }
            }
        }
        _ => {
            eprintln!("usage: echo_server [--listen ADDR]");
            std::process::exit(2);
        }
    }
}
