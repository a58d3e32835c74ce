//! `HOUR(ts)`: the hour of the day (0..=23) of a timestamp or time, as
//! BIGINT, like Flink's `HOUR`. DataFusion has only `date_part('hour', ts)`
//! (and `extract`); Nexmark q14 writes `HOUR(dateTime)`. A NULL input gives
//! NULL; a timestamp with a time zone gives the hour in that zone.

use datafusion::arrow::compute::{DatePart, cast, date_part};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    TypeSignatureClass, Volatility,
};

const NAME: &str = "hour";

/// The `hour` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Hour {
    signature: Signature,
}

impl Default for Hour {
    fn default() -> Self {
        Hour {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Coercible(vec![Coercion::new_exact(
                        TypeSignatureClass::Timestamp,
                    )]),
                    TypeSignature::Coercible(vec![Coercion::new_exact(TypeSignatureClass::Time)]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Hour {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!(
                "{NAME} takes one timestamp, not {} arguments",
                args.args.len()
            );
        };
        let array = arg.to_array(1)?;
        let hours = cast(
            &date_part(array.as_ref(), DatePart::Hour)?,
            &DataType::Int64,
        )?;
        match arg {
            ColumnarValue::Scalar(_) => Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &hours, 0,
            )?)),
            ColumnarValue::Array(_) => Ok(ColumnarValue::Array(hours)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::functions::test_util::call;
    use datafusion::arrow::array::{Array, AsArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::Int64Type;
    use std::sync::Arc;

    #[test]
    fn hour_of_day() {
        // 1970-01-01 00:00, 07:59:59.999, 23:30, 1970-01-02 01:00, NULL.
        let ts = TimestampMillisecondArray::from(vec![
            Some(0),
            Some(8 * 3_600_000 - 1),
            Some(23 * 3_600_000 + 1_800_000),
            Some(25 * 3_600_000),
            None,
        ]);
        let out = call(
            &Hour::default(),
            vec![ColumnarValue::Array(Arc::new(ts))],
            5,
        );
        let ColumnarValue::Array(out) = out else {
            panic!("expected an array");
        };
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(&out.values()[..4], &[0, 7, 23, 1]);
        assert!(out.is_null(4));
        let scalar = ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(13 * 3_600_000),
            None,
        ));
        assert!(matches!(
            call(&Hour::default(), vec![scalar], 1),
            ColumnarValue::Scalar(ScalarValue::Int64(Some(13)))
        ));
    }
}
