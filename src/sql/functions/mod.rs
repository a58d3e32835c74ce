//! Flink SQL functions that the Nexmark queries use and DataFusion lacks, as
//! DataFusion scalar UDFs with Flink's semantics: `MOD` (q2),
//! `REGEXP_EXTRACT` (q21), `SPLIT_INDEX` (q22), `HOUR` and Nexmark's
//! `count_char` UDF (q14).
//!
//! They are evaluated by DataFusion like its built-ins (vectorized over
//! `Utf8`, `LargeUtf8` and `Utf8View` columns, scalar or array arguments);
//! quiver only has to [`register`] them on every `SessionContext` that plans
//! a query.
//!
//! `sql_tests.rs` calls them through SQL on a `SessionContext` they are
//! registered on, over literals and over generated Nexmark bids.

mod args;
mod count_char;
mod hour;
mod modulo;
mod regexp_extract;
mod split_index;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use count_char::CountChar;
pub use hour::Hour;
pub use modulo::Mod;
pub use regexp_extract::RegexpExtract;
pub use split_index::SplitIndex;

/// The Flink functions quiver adds to DataFusion, one `ScalarUDF` each.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(RegexpExtract::default()),
        ScalarUDF::from(SplitIndex::default()),
        ScalarUDF::from(CountChar::default()),
        ScalarUDF::from(Hour::default()),
        ScalarUDF::from(Mod::default()),
    ]
}

/// Registers the Flink functions ([`udfs`]) on `ctx`, so that queries planned
/// there can call `regexp_extract`, `split_index`, `count_char`, `hour` and `mod`
/// (names are case-insensitive, as for every unquoted SQL function name).
/// Call it on every `SessionContext` that plans or runs quiver queries.
pub fn register(ctx: &SessionContext) {
    for udf in udfs() {
        ctx.register_udf(udf);
    }
}

/// A new `SessionContext` with `config` and the Flink functions registered:
/// a drop-in for `SessionContext::new_with_config`. DataFusion's cache of
/// directory listings is off: file tables are written while they are read,
/// and a query must see the files present when it runs.
pub fn session_context(config: datafusion::prelude::SessionConfig) -> SessionContext {
    use datafusion::execution::cache::cache_manager::CacheManagerConfig;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
    let ctx = match RuntimeEnvBuilder::new()
        .with_cache_manager(caches)
        .build_arc()
    {
        Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
        Err(_) => SessionContext::new_with_config(config),
    };
    register(&ctx);
    ctx
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Calling a UDF directly, as DataFusion's physical expression would.

    use std::sync::Arc;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl};

    /// The arguments DataFusion would pass for `values` over `rows` rows.
    pub(crate) fn args(values: Vec<ColumnarValue>, rows: usize) -> ScalarFunctionArgs {
        let arg_fields = values
            .iter()
            .map(|v| Arc::new(Field::new("arg", v.data_type(), true)))
            .collect();
        ScalarFunctionArgs {
            args: values,
            arg_fields,
            number_rows: rows,
            return_field: Arc::new(Field::new("out", DataType::Null, true)),
            config_options: Arc::new(ConfigOptions::default()),
        }
    }

    /// Invokes `udf`, panicking on an error.
    pub(crate) fn call(
        udf: &dyn ScalarUDFImpl,
        values: Vec<ColumnarValue>,
        rows: usize,
    ) -> ColumnarValue {
        udf.invoke_with_args(args(values, rows)).expect("invoke")
    }

    /// The strings of a Utf8 result (array or scalar).
    pub(crate) fn strings(value: ColumnarValue) -> Vec<Option<String>> {
        match value {
            ColumnarValue::Array(a) => a
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(String::from))
                .collect(),
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => vec![v],
            other => panic!("expected Utf8, got {other:?}"),
        }
    }

    /// `expected` as [`strings`] returns it.
    pub(crate) fn owned(expected: &[Option<&str>]) -> Vec<Option<String>> {
        expected.iter().map(|s| s.map(String::from)).collect()
    }
}

#[cfg(test)]
mod sql_tests;
