//! A small HTTP/1.1 server for what the binary serves while queries run:
//! `GET /metrics` (Prometheus' text format, `--metrics`). Routes are a
//! table of paths and functions ([`Routes`]), so more pages can be added
//! without touching the server. It answers GET and HEAD, one request per
//! connection (`Connection: close`), with no authentication: it binds to
//! loopback unless the user asks otherwise. No engine logic here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer to a request.
pub struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    /// `200 OK` with `body` of `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: "200 OK",
            content_type,
            body: body.into(),
        }
    }

    fn error(status: &'static str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status}\n").into_bytes(),
        }
    }
}

type Handler = Box<dyn Fn() -> Response + Send + Sync>;

/// The paths served and what answers each.
#[derive(Default)]
pub struct Routes {
    routes: Vec<(&'static str, Handler)>,
}

impl Routes {
    /// Serves `path` (without a query string) with `handler`.
    pub fn route(
        mut self,
        path: &'static str,
        handler: impl Fn() -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push((path, Box::new(handler)));
        self
    }

    fn answer(&self, method: &str, target: &str) -> Response {
        if method != "GET" && method != "HEAD" {
            return Response::error("405 Method Not Allowed");
        }
        let path = target.split(['?', '#']).next().unwrap_or(target);
        match self.routes.iter().find(|(p, _)| *p == path) {
            Some((_, handler)) => handler(),
            None => Response::error("404 Not Found"),
        }
    }
}

/// Refuses `addr` for the server of option `option` (`--ui`, `--metrics`)
/// unless it is loopback or `public` (`{option}-public`) was given: nothing
/// served here has authentication.
pub fn check_exposure(option: &str, addr: SocketAddr, public: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !public {
        anyhow::bail!(
            "{option} {addr} is not a loopback address and what it serves has no \
             authentication; add {option}-public to serve it there anyway"
        );
    }
    Ok(())
}

/// Binds `addr` (the caller has checked it with [`check_exposure`]) and
/// serves `routes` on the current tokio runtime
/// until the process ends. Returns the address bound (port 0 picks one).
pub async fn serve(addr: SocketAddr, routes: Routes) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("http server on {bound}: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, &routes).await {
                    tracing::debug!("http server on {bound}: {e}");
                }
            });
        }
    });
    Ok(bound)
}

/// Reads one request from `stream`, answers it and closes the connection.
async fn handle(mut stream: TcpStream, routes: &Routes) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.ends_with(b"\n\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > MAX_HEAD {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let mut head_only = false;
    let response = match read {
        Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) if head.len() > MAX_HEAD => {
            Response::error("431 Request Header Fields Too Large")
        }
        Ok(Ok(())) => {
            let text = String::from_utf8_lossy(&head);
            let mut parts = text.lines().next().unwrap_or("").split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(method), Some(target)) => {
                    head_only = method == "HEAD";
                    routes.answer(method, target)
                }
                _ => Response::error("400 Bad Request"),
            }
        }
    };
    let header = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head_only {
        stream.write_all(&response.body).await?;
    }
    stream.shutdown().await
}
