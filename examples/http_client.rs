//! An HTTP/1.1 client: hyper 1.x on weft, no tokio runtime. Prints the status, the
//! headers and the body of a GET.
//!
//! ```text
//! cargo run --example http_client -- http://127.0.0.1:8080/   # fetch a URL (http only)
//! cargo run --example http_client                             # self-test: local server
//! ```
//!
//! With no arguments it starts a small hyper server on 127.0.0.1 (a port the kernel
//! picks), fetches `/` from it, prints what came back and exits.

use std::convert::Infallible;
use std::io;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, Uri};
use weft::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// GETs `url` (an `http://` URL) and prints the answer.
async fn fetch(url: &str) -> Result<(), Error> {
    let uri: Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs are supported").into());
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("{url}: the URL has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    // A failed connect's error names the address.
    let stream = TcpStream::connect((host, port)).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(stream).await?;
    weft::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection: {e}");
        }
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let req = Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    println!("{:?} {}", resp.version(), resp.status());
    for (name, value) in resp.headers() {
        println!("{name}: {}", value.to_str().unwrap_or("<binary>"));
    }
    println!();
    let body = resp.into_body().collect().await?.to_bytes();
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}

/// A server that answers "hello from weft" to every request, for the self-test.
async fn local_server() -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    weft::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            weft::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello from weft"))))
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(weft::hyper::Timer::default())
                    .serve_connection(stream, svc)
                    .await
                {
                    eprintln!("server connection: {e}");
                }
            });
        }
    });
    Ok(addr)
}

#[weft::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let addr = local_server().await?;
            let url = format!("http://{addr}/");
            println!("GET {url}");
            fetch(&url).await
        }
        [url] => fetch(url).await,
        _ => {
            eprintln!("usage: http_client [URL]");
            std::process::exit(2);
        }
    }
}
