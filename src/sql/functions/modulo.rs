//! `MOD(a, b)`: the remainder of `a` divided by `b`, like Flink's `MOD` —
//! negative only when `a` is negative (truncated division, as `%` in Java
//! and Rust). Both arguments are coerced to a common numeric type, which is
//! the result type; NULL when either is NULL; dividing by zero is an error,
//! as in Flink. Nexmark q2 uses it as `MOD(auction, 123) = 0`.

use datafusion::arrow::compute::kernels::numeric::rem;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

const NAME: &str = "mod";

/// The `mod` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mod {
    signature: Signature,
}

impl Default for Mod {
    fn default() -> Self {
        Mod {
            signature: Signature::numeric(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => exec_err!("{NAME} takes two numbers"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return exec_err!(
                "{NAME} takes two numbers, not {} arguments",
                args.args.len()
            );
        };
        let scalars = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let rows = if scalars { 1 } else { args.number_rows };
        let out = rem(&a.to_array(rows)?, &b.to_array(rows)?)?;
        if scalars {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::functions::test_util::call;
    use datafusion::arrow::array::{Array, AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;
    use std::sync::Arc;

    #[test]
    fn remainders_take_the_sign_of_the_dividend() {
        let a = Int64Array::from(vec![Some(1230), Some(1231), Some(-7), None]);
        let out = call(
            &Mod::default(),
            vec![
                ColumnarValue::Array(Arc::new(a)),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(123))),
            ],
            4,
        );
        let ColumnarValue::Array(out) = out else {
            panic!("expected an array");
        };
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(&out.values()[..3], &[0, 1, -7]);
        assert!(out.is_null(3));
        let by_zero = Mod::default().invoke_with_args(crate::sql::functions::test_util::args(
            vec![
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(0))),
            ],
            1,
        ));
        assert!(by_zero.is_err());
    }
}
