//! Reading a file table: `CREATE TABLE t (...) WITH (connector = 'parquet' |
//! 'csv' | 'ndjson' | 'filesystem', path = ...)` is a sink for `INSERT INTO`
//! and also a static table any query can read — e.g. a dimension table a
//! stream joins with. It is DataFusion's listing table over `path`, with the
//! declared columns and the sink's Hive partitions: the directory is listed
//! at each run, so a query sees the files present when it runs (finished
//! files only: temp files start with `.`, the commit log lives under `_quiver/`,
//! and readers skip both).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::file_format::FileFormat as DataFusionFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};

use super::SqlError;
use crate::sink::files::{FileFormat, FileSinkOptions};

/// A listing table over the files a file sink with `options` writes, whose
/// rows have `schema` (partition columns included).
pub fn listing_table(
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
