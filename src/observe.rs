//! What the binary tells about running queries besides their results:
//! `--metrics ADDR` serves Prometheus metrics ([`serve_metrics`]), and
//! `--progress-json FILE` writes every query's progress records
//! ([`quiver::ProgressRecord`]), one JSON object a line, in the order the
//! batches were committed. Foreground queries' records come from the front
//! end that prints them ([`ProgressJson::sender`]), background queries'
//! from the registry once their sink committed the batch. Each line is
//! flushed as it is written, so `tail -f` follows the run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quiver::ProgressRecord;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How often the exporter's histograms are compacted between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// `--metrics ADDR`: installs Prometheus' recorder for the library's
/// metrics (`quiver::report::metrics`) and serves them at
/// `http://ADDR/metrics`. A non-loopback `addr` needs `public`
/// (`--metrics-public`): the endpoint has no authentication. Returns the
/// address bound.
pub async fn serve_metrics(addr: SocketAddr, public: bool) -> anyhow::Result<SocketAddr> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    crate::http::check_exposure("--metrics", addr, public)?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".into()),
            quiver::METRIC_DURATION_BUCKETS,
        )?
        .install_recorder()?;
    quiver::describe_metrics();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_INTERVAL).await;
            upkeep.run_upkeep();
        }
    });
    let routes = crate::http::Routes::default().route("/metrics", move || {
        crate::http::Response::ok("text/plain; version=0.0.4; charset=utf-8", handle.render())
    });
    crate::http::serve(addr, routes).await
}

/// The writer of a `--progress-json` file.
pub struct ProgressJson {
    records: mpsc::UnboundedSender<ProgressRecord>,
    done: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ProgressJson {
    /// Creates (or truncates) `path` and writes the records sent to
    /// [`Self::sender`] and those of `background` until [`Self::finish`].
    pub async fn create(
        path: &Path,
        background: broadcast::Receiver<ProgressRecord>,
    ) -> anyhow::Result<Self> {
        let file = tokio::fs::File::create(path).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot create the --progress-json file '{}': {e}",
                path.display()
            )
        })?;
        let (records, received) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let task = tokio::spawn(write_records(
            path.to_path_buf(),
            file,
            received,
            background,
            finished,
        ));
        Ok(Self {
            records,
            done,
            task,
        })
    }

    /// Where a front end sends the records of the queries it consumes.
    pub fn sender(&self) -> mpsc::UnboundedSender<ProgressRecord> {
        self.records.clone()
    }

    /// Writes the records still queued (every query has ended), and closes
    /// the file.
    pub async fn finish(self) -> anyhow::Result<()> {
        let _ = self.done.send(());
        drop(self.records);
        self.task.await?
    }
}

async fn write_records(
    path: PathBuf,
    mut file: tokio::fs::File,
    mut foreground: mpsc::UnboundedReceiver<ProgressRecord>,
    mut background: broadcast::Receiver<ProgressRecord>,
    mut finished: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let failed = |e: std::io::Error| anyhow::anyhow!("writing '{}': {e}", path.display());
    let mut missed = 0;
    loop {
        let record = tokio::select! {
            biased;
            Some(record) = foreground.recv() => record,
            received = background.recv() => match received {
                Ok(record) => record,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    missed += n;
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = (&mut finished).await;
                    break;
                }
            },
            _ = &mut finished => break,
        };
        write_line(&mut file, &record).await.map_err(failed)?;
    }
    // Every query has ended: what is still queued.
    while let Ok(record) = background.try_recv() {
        write_line(&mut file, &record).await.map_err(failed)?;
    }
    while let Some(record) = foreground.recv().await {
        write_line(&mut file, &record).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    if missed > 0 {
        anyhow::bail!(
            "--progress-json '{}' misses {missed} records: writing fell behind",
            path.display()
        );
    }
    Ok(())
}

async fn write_line(file: &mut tokio::fs::File, record: &ProgressRecord) -> std::io::Result<()> {
    let mut line = record.to_json();
    line.push('\n');
    file.write_all(line.as_bytes()).await?;
    file.flush().await
}
