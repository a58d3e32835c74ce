//! Reading a file table: `CREATE TABLE t (...) WITH (connector = 'parquet' |
//! 'csv' | 'ndjson' | 'filesystem', path = ...)` is a sink for `INSERT INTO`
//! and also a static table any query can read — e.g. a dimension table a
//! stream joins with. It is DataFusion's listing table over `path`, with the
//! declared columns and the sink's Hive partitions (finished files only: temp
//! files start with `.`, the commit log lives under `_quiver/`, and readers
//! skip both). A one-off query lists and reads the files when it runs; a
//! continuous query reads them **once**, when it starts, and keeps the rows
//! in memory for every batch — again every `refresh_interval` of batch time
//! when that option is set (like Flink's lookup cache TTL).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::{ExecutionPlan, collect};

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::file_format::FileFormat as DataFusionFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};

use super::SqlError;
use super::proctime::ProcTime;
use crate::sink::files::{FileFormat, FileSinkOptions};

/// A file table as the session's catalog holds it: the listing table, read
/// afresh by every one-off query, and how continuous queries cache it.
#[derive(Debug)]
pub struct FileTable {
    listing: Arc<ListingTable>,
    refresh: Option<Duration>,
}

impl FileTable {
    /// The readable table of a file sink with `options`, whose rows have
    /// `schema` (partition columns included).
    pub fn new(options: &FileSinkOptions, schema: &SchemaRef) -> Result<Self, SqlError> {
        Ok(Self {
            listing: listing_table(options, schema)?,
            refresh: options.refresh_interval,
        })
    }

    /// The table one continuous query reads: the rows read at its first
    /// scan, refreshed by batch time (`clock`) every `refresh_interval`.
    pub fn snapshot(&self, clock: ProcTime) -> Arc<SnapshotTable> {
        Arc::new(SnapshotTable {
            listing: self.listing.clone(),
            refresh_ms: self.refresh.map(|r| r.as_millis() as i64),
            clock,
            cache: Mutex::new(None),
        })
    }
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.listing.scan(state, projection, filters, limit).await
    }
}

/// A file table's rows held in memory for one continuous query.
#[derive(Debug)]
pub struct SnapshotTable {
    listing: Arc<ListingTable>,
    refresh_ms: Option<i64>,
    clock: ProcTime,
    /// Batch time of the read (0: before the first batch) and the rows.
    cache: Mutex<Option<(i64, Vec<RecordBatch>)>>,
}

impl SnapshotTable {
    /// The cached rows, read (again) when there are none or they are older
    /// than the refresh interval.
    async fn rows(&self, state: &dyn Session) -> datafusion::error::Result<Vec<RecordBatch>> {
        let now = self.clock.get();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((read_at, rows)) = cache.as_mut() {
                if *read_at == 0 {
                    // Read while planning, before the first batch: count from it.
                    *read_at = now;
                }
                let stale = self
                    .refresh_ms
                    .is_some_and(|r| now.saturating_sub(*read_at) >= r);
                if !stale {
                    return Ok(rows.clone());
                }
            }
        }
        let plan = self.listing.scan(state, None, &[], None).await?;
        let rows = collect(plan, state.task_ctx()).await?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, rows.clone()));
        Ok(rows)
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows(state).await?;
        MemorySourceConfig::try_new_exec(&[rows], self.schema(), projection.cloned())
            .map(|exec| exec as Arc<dyn ExecutionPlan>)
    }
}

/// A listing table over the files a file sink with `options` writes, whose
/// rows have `schema` (partition columns included).
fn listing_table(
    options: &FileSinkOptions,
    schema: &SchemaRef,
) -> Result<Arc<ListingTable>, SqlError> {
    let format: Arc<dyn DataFusionFormat> = match options.format {
        FileFormat::Parquet => Arc::new(ParquetFormat::default()),
        FileFormat::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
        FileFormat::Ndjson => Arc::new(JsonFormat::default()),
    };
    let partitions: Vec<(String, datafusion::arrow::datatypes::DataType)> = options
        .partition_by
        .iter()
        .filter_map(|c| schema.field_with_name(c).ok())
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let file_schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !options.partition_by.contains(f.name()))
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let dir = format!(
        "{}/",
        options.path.display().to_string().trim_end_matches('/')
    );
    let url = ListingTableUrl::parse(&dir)?;
    let listing = ListingOptions::new(format)
        .with_file_extension(format!(".{}", options.format.extension()))
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url)
        .with_listing_options(listing)
        .with_schema(file_schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::options::Options;

    async fn total(ctx: &SessionContext) -> i64 {
        let rows = ctx
            .sql("SELECT sum(v) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    fn table(dir: &std::path::Path, refresh: Option<&str>) -> FileTable {
        let mut pairs = vec![("path".to_string(), dir.display().to_string())];
        if let Some(r) = refresh {
            pairs.push(("refresh_interval".to_string(), r.to_string()));
        }
        let options = FileSinkOptions::parse("csv", &Options::new(pairs)).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        FileTable::new(&options, &schema).unwrap()
    }

    #[tokio::test]
    async fn a_continuous_query_reads_the_files_once_or_every_refresh_interval() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "v\n1\n2\n").unwrap();
        let once = table(dir.path(), None);
        let refreshed = table(dir.path(), Some("10s"));
        let clock = ProcTime::default();
        let context = || crate::sql::functions::session_context(Default::default());
        let (ctx_once, ctx_refreshed, ctx_live) = (context(), context(), context());
        ctx_once
            .register_table("t", once.snapshot(clock.clone()))
            .unwrap();
        ctx_refreshed
            .register_table("t", refreshed.snapshot(clock.clone()))
            .unwrap();
        ctx_live.register_table("t", Arc::new(once)).unwrap();
        clock.set(1_000);
        for ctx in [&ctx_once, &ctx_refreshed, &ctx_live] {
            assert_eq!(total(ctx).await, 3);
        }
        std::fs::write(dir.path().join("b.csv"), "v\n10\n").unwrap();
        clock.set(5_000);
        assert_eq!(total(&ctx_once).await, 3, "read once");
        assert_eq!(total(&ctx_refreshed).await, 3, "not yet refreshed");
        assert_eq!(
            total(&ctx_live).await,
            13,
            "one-off queries list the files each time"
        );
        clock.set(11_000);
        assert_eq!(total(&ctx_once).await, 3, "read once");
        assert_eq!(
            total(&ctx_refreshed).await,
            13,
            "refreshed after 10 s of batch time"
        );
    }

    #[test]
    fn refresh_interval_is_validated() {
        let options = |v: &str| {
            FileSinkOptions::parse(
                "csv",
                &Options::new(
                    [("path", "x"), ("refresh_interval", v)]
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                ),
            )
        };
        assert!(options("0s").is_err());
        assert!(
            options("soon")
                .unwrap_err()
                .to_string()
                .contains("refresh_interval")
        );
        assert_eq!(
            options("1 min").unwrap().refresh_interval,
            Some(Duration::from_secs(60))
        );
    }
}
