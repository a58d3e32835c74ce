//! The live page (`--ui ADDR`, Spark's port 4040 by convention): a page per
//! process listing its queries with their state, and per query charts of
//! its recent batches (input rate, batch duration, scheduling delay,
//! watermark delay, late rows, state, output rows, Kafka lag), its last
//! error and its plan. The charts update every second from `/api/queries`
//! without reloading.
//!
//! A front end, like the console printer: it holds no engine logic, only a
//! [`Board`] the front end feeds with the batch ends it already receives,
//! and a small HTTP/1 server (hyper) serving the board as JSON and the page
//! itself, whose assets (and the uPlot chart library, MIT, from npm) are
//! embedded in the binary: no build step, nothing fetched at run time.
//! There is no authentication: the server listens on loopback unless
//! `--ui-public` says otherwise.

mod board;
mod feed;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

pub use board::{Board, Kind};
pub use feed::{explain, feed_background};

/// The embedded files of the page: path, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/uPlot.iife.min.js"),
    ),
    (
        "/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/uPlot.min.css"),
    ),
    (
        "/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/uPlot.LICENSE"),
    ),
];

/// A served page: its board and address.
pub struct Page {
    /// What the page shows; the front end feeds it.
    pub board: Arc<Board>,
    /// Where the page is, `http://ADDR/`.
    pub url: String,
}

/// Binds `addr` (see [`bind`]) and serves the page there, for queries
/// with batches every `interval_ms`.
pub async fn start(addr: SocketAddr, public: bool, interval_ms: i64) -> anyhow::Result<Page> {
    let listener = bind(addr, public).await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let board = Arc::new(Board::new(interval_ms));
    serve(listener, board.clone());
    Ok(Page { board, url })
}

/// Binds the page's address: loopback only, unless `public` (the page has
/// no authentication). Port 0 picks a free port; the bound address is
/// returned for the front end to print.
pub async fn bind(addr: SocketAddr, public: bool) -> anyhow::Result<TcpListener> {
    if !addr.ip().is_loopback() && !public {
        anyhow::bail!(
            "--ui {addr}: the page has no authentication, so it listens on loopback \
             (127.0.0.1) by default; add --ui-public to serve it on {addr}"
        );
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--ui {addr}: cannot listen: {e}"))
}

/// Serves the page and `board` on `listener` until the process ends; one
/// task per connection.
pub fn serve(listener: TcpListener, board: Arc<Board>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("ui: accepting a connection failed: {e}");
                    continue;
                }
            };
            let board = board.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let board = board.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &board)) }
                });
                // A client that goes away mid-request is no concern of ours.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn respond(request: &Request<Incoming>, board: &Board) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let path = request.uri().path();
    if path == "/api/queries" {
        return reply(StatusCode::OK, "application/json", board.to_json());
    }
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, body)) => reply(StatusCode::OK, kind, *body),
        None => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn reply(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = kind.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    if let Ok(value) = "no-store".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CACHE_CONTROL, value);
    }
    response
}
