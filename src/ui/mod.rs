//! The live page (`--ui ADDR`, Spark's port 4040 by convention): a page per
//! process listing its queries with their state, and per query charts of
//! its recent batches (input rate, batch duration, scheduling delay,
//! watermark delay, late rows, state, output rows, Kafka lag), its last
//! error and its plan. The charts update every second from `/api/queries`
//! without reloading.
//!
//! A front end, like the console printer: it holds no engine logic, only a
//! [`Board`] the front end feeds with the progress records it already
//! has, and routes on the binary's small HTTP server ([`crate::http`])
//! serving the board as JSON and the page itself, whose assets (and the
//! uPlot chart library, MIT, from npm) are embedded in the binary: no build
//! step, nothing fetched at run time.
//! There is no authentication: the server listens on loopback unless
//! `--ui-public` says otherwise.

mod board;
mod feed;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::http::{Response, Routes};

pub use board::{Board, Kind};
pub use feed::{background_started, feed_background, foreground_started};

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

/// Serves the page at `addr` for queries with batches every `interval_ms`:
/// loopback only, unless `public` (the page has no authentication). Port 0
/// picks a free port; the page's URL is returned for the front end to print.
pub async fn start(addr: SocketAddr, public: bool, interval_ms: i64) -> anyhow::Result<Page> {
    crate::http::check_exposure("--ui", addr, public)?;
    let board = Arc::new(Board::new(interval_ms));
    let mut routes = Routes::default();
    for &(path, kind, body) in ASSETS {
        routes = routes.route(path, move || Response::ok(kind, body));
    }
    let data = board.clone();
    routes = routes.route("/api/queries", move || {
        Response::ok("application/json", data.to_json())
    });
    let bound = crate::http::serve(addr, routes)
        .await
        .map_err(|e| anyhow::anyhow!("--ui: {e}"))?;
    Ok(Page {
        board,
        url: format!("http://{bound}/"),
    })
}
