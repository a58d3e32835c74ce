//! Uniform row access to UDF arguments, whatever DataFusion passes: a scalar
//! or an array, and for text any of `Utf8`, `LargeUtf8` or `Utf8View`.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::ColumnarValue;

/// A text argument, read row by row without copying.
pub(super) enum Strings<'a> {
    /// The same value (or NULL) for every row.
    Scalar(Option<&'a str>),
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    /// Views argument `arg` (named `what` in errors) of function `function`.
    pub(super) fn new(function: &str, what: &str, arg: &'a ColumnarValue) -> Result<Self> {
        match arg {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            ) => Ok(Strings::Scalar(v.as_deref())),
            ColumnarValue::Scalar(ScalarValue::Null) => Ok(Strings::Scalar(None)),
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8 => Ok(Strings::Utf8(a.as_string::<i32>())),
                DataType::LargeUtf8 => Ok(Strings::Large(a.as_string::<i64>())),
                DataType::Utf8View => Ok(Strings::View(a.as_string_view())),
                DataType::Null => Ok(Strings::Scalar(None)),
                other => exec_err!("{function}: {what} must be a string, not {other}"),
            },
            ColumnarValue::Scalar(other) => exec_err!(
                "{function}: {what} must be a string, not {}",
                other.data_type()
            ),
        }
    }

    /// The value at row `i`, `None` for NULL.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Strings::Scalar(v) => *v,
            Strings::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }

    /// The value shared by all rows, if this argument is a scalar.
    pub(super) fn scalar(&self) -> Option<Option<&'a str>> {
        match self {
            Strings::Scalar(v) => Some(*v),
            _ => None,
        }
    }
}

/// An integer argument (any integer type, read as `i64`).
pub(super) enum Ints {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl Ints {
    /// Views argument `arg` (named `what` in errors) of function `function`.
    pub(super) fn new(function: &str, what: &str, arg: &ColumnarValue) -> Result<Self> {
        match arg {
            ColumnarValue::Scalar(s) if s.is_null() => Ok(Ints::Scalar(None)),
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(v) => Ok(Ints::Scalar(v)),
                other => exec_err!(
                    "{function}: {what} must be an integer, not {}",
                    other.data_type()
                ),
            },
            ColumnarValue::Array(a) if a.data_type().is_integer() => {
                let ints = cast(a, &DataType::Int64)?;
                Ok(Ints::Array(ints.as_primitive().clone()))
            }
            ColumnarValue::Array(a) if a.data_type() == &DataType::Null => Ok(Ints::Scalar(None)),
            ColumnarValue::Array(a) => exec_err!(
                "{function}: {what} must be an integer, not {}",
                a.data_type()
            ),
        }
    }

    /// The value at row `i`, `None` for NULL.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<i64> {
        match self {
            Ints::Scalar(v) => *v,
            Ints::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// Rows to compute: 1 when every argument is a scalar (the result is then a
/// scalar too), otherwise the batch's row count.
pub(super) fn rows(args: &[ColumnarValue], number_rows: usize) -> usize {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        1
    } else {
        number_rows
    }
}

/// Wraps a computed array as the function's result: a scalar when every
/// argument was a scalar, otherwise the array.
pub(super) fn result(args: &[ColumnarValue], array: ArrayRef) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}
