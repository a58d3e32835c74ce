//! `count_char(str, ch)`: how many times the first character of `ch` occurs
//! in `str`, as BIGINT — Nexmark q14's UDF
//! (`com.github.nexmark.flink.udf.CountChar`), used as `count_char(extra, 'c')`.
//! As in the Java UDF, a NULL `str` counts 0; a NULL `ch` gives NULL and an
//! empty `ch` counts 0 (the Java UDF would throw). Characters are Unicode
//! scalar values, not UTF-16 units.

use std::sync::Arc;

use datafusion::arrow::array::Int64Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::types::logical_string;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignatureClass,
    Volatility,
};

use super::args::{Strings, result, rows};

const NAME: &str = "count_char";

/// The `count_char` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CountChar {
    signature: Signature,
}

impl Default for CountChar {
    fn default() -> Self {
        let text = || Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        CountChar {
            signature: Signature::coercible(vec![text(), text()], Volatility::Immutable),
        }
    }
}

/// Occurrences of `ch` in `text` (a byte scan when `ch` is ASCII).
fn count(text: &str, ch: char) -> i64 {
    let n = if ch.is_ascii() {
        let byte = ch as u8;
        text.bytes().filter(|b| *b == byte).count()
    } else {
        text.chars().filter(|c| *c == ch).count()
    };
    n as i64
}

impl ScalarUDFImpl for CountChar {
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
        let values = &args.args;
        if values.len() != 2 {
            return exec_err!("{NAME} takes (str, ch), not {} arguments", values.len());
        }
        let text = Strings::new(NAME, "str", &values[0])?;
        let chars = Strings::new(NAME, "ch", &values[1])?;
        let n = rows(values, args.number_rows);
        let mut out = Int64Builder::with_capacity(n);
        for i in 0..n {
            match chars.get(i) {
                None => out.append_null(),
                Some(ch) => out.append_value(match (text.get(i), ch.chars().next()) {
                    (Some(s), Some(c)) => count(s, c),
                    _ => 0,
                }),
            }
        }
        result(values, Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::functions::test_util::call;
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeStringArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::common::ScalarValue;

    #[test]
    fn counts_characters() {
        assert_eq!(count("accbc", 'c'), 3);
        assert_eq!(count("", 'c'), 0);
        assert_eq!(count("ééa", 'é'), 2);
        assert_eq!(count("abc", 'C'), 0, "case-sensitive");
    }

    #[test]
    fn arrays_and_nulls() {
        let text: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("cc"), None, Some("xcx")]));
        let ch = |v: Option<&str>| ColumnarValue::Scalar(ScalarValue::Utf8(v.map(String::from)));
        let out = call(
            &CountChar::default(),
            vec![ColumnarValue::Array(text.clone()), ch(Some("cat"))],
            3,
        );
        let ColumnarValue::Array(out) = out else {
            panic!("expected an array");
        };
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.values().to_vec(), vec![2, 0, 1]);
        assert_eq!(
            out.null_count(),
            0,
            "a NULL str counts 0, as in the Java UDF"
        );
        let out = call(
            &CountChar::default(),
            vec![ColumnarValue::Array(text), ch(None)],
            3,
        );
        let ColumnarValue::Array(out) = out else {
            panic!("expected an array");
        };
        assert_eq!(out.null_count(), 3);
        let out = call(
            &CountChar::default(),
            vec![ch(Some("abc")), ch(Some(""))],
            1,
        );
        assert!(matches!(
            out,
            ColumnarValue::Scalar(ScalarValue::Int64(Some(0)))
        ));
    }
}
