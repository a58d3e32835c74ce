//! `PROCTIME()`: the processing time of the rows, which in quiver is the
//! scheduled time of the batch they arrived in (the same value as the
//! `_batch_time` column). A view such as Nexmark q12's
//! `SELECT *, PROCTIME() AS p_time FROM bid` can then be windowed by `p_time`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::batch::time_type;

/// The batch time one query's `PROCTIME()` returns; the executor sets it
/// before running the query's plans for a batch.
#[derive(Debug, Clone, Default)]
pub struct ProcTime(Arc<AtomicI64>);

impl ProcTime {
    /// Sets the time of the batch being processed (ms since the epoch).
    pub fn set(&self, batch_time_ms: i64) {
        self.0.store(batch_time_ms, Ordering::Relaxed);
    }

    /// The time of the batch being processed (0 before the first batch).
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The `proctime()` function reading this clock.
    pub fn udf(&self) -> ScalarUDF {
        ScalarUDF::from(ProcTimeUdf {
            now: self.0.clone(),
            signature: Signature::nullary(Volatility::Volatile),
        })
    }
}

#[derive(Debug)]
struct ProcTimeUdf {
    now: Arc<AtomicI64>,
    signature: Signature,
}

impl PartialEq for ProcTimeUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.now, &other.now)
    }
}

impl Eq for ProcTimeUdf {}

impl Hash for ProcTimeUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.now).hash(state);
    }
}

impl ScalarUDFImpl for ProcTimeUdf {
    fn name(&self) -> &str {
        "proctime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(time_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(self.now.load(Ordering::Relaxed)),
            None,
        )))
    }
}
