//! `SPLIT_INDEX(str, delimiter, index)` with Flink's semantics: split `str`
//! by the whole `delimiter` string, keeping empty pieces, and return the
//! piece at the 0-based `index`. NULL when an argument is NULL, the index is
//! negative or out of range, or `str` is empty. An empty delimiter splits on
//! whitespace (Flink uses commons-lang's `splitByWholeSeparatorPreserveAllTokens`).
//! Nexmark q22 uses it as `SPLIT_INDEX(url, '/', 3)`.

use std::sync::Arc;

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::types::{NativeType, logical_int64, logical_string};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignatureClass,
    Volatility,
};

use super::args::{Ints, Strings, result, rows};

const NAME: &str = "split_index";

/// The `split_index` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl Default for SplitIndex {
    fn default() -> Self {
        SplitIndex {
            signature: Signature::coercible(
                vec![
                    Coercion::new_exact(TypeSignatureClass::Native(logical_string())),
                    Coercion::new_exact(TypeSignatureClass::Native(logical_string())),
                    Coercion::new_implicit(
                        TypeSignatureClass::Native(logical_int64()),
                        vec![TypeSignatureClass::Integer],
                        NativeType::Int64,
                    ),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// The `index`-th piece of `text` split by `delimiter`.
fn split_index<'t>(text: &'t str, delimiter: &str, index: i64) -> Option<&'t str> {
    let index = usize::try_from(index).ok()?;
    if text.is_empty() {
        return None;
    }
    if delimiter.is_empty() {
        text.split(char::is_whitespace).nth(index)
    } else {
        text.split(delimiter).nth(index)
    }
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = &args.args;
        if values.len() != 3 {
            return exec_err!(
                "{NAME} takes (str, delimiter, index), not {} arguments",
                values.len()
            );
        }
        let text = Strings::new(NAME, "str", &values[0])?;
        let delimiter = Strings::new(NAME, "delimiter", &values[1])?;
        let index = Ints::new(NAME, "index", &values[2])?;
        let n = rows(values, args.number_rows);
        let mut out = StringBuilder::with_capacity(n, n * 8);
        for i in 0..n {
            out.append_option(match (text.get(i), delimiter.get(i), index.get(i)) {
                (Some(s), Some(d), Some(idx)) => split_index(s, d, idx),
                _ => None,
            });
        }
        result(values, Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::functions::test_util::{call, owned, strings};
    use datafusion::arrow::array::{ArrayRef, StringViewArray};
    use datafusion::common::ScalarValue;

    const URL: &str = "https://www.nexmark.com/abc/de_f/gh/item.htm?query=1";

    #[test]
    fn pieces_of_a_nexmark_url() {
        let piece = |i| split_index(URL, "/", i);
        assert_eq!(piece(0), Some("https:"));
        assert_eq!(piece(1), Some(""), "empty pieces are kept");
        assert_eq!(piece(3), Some("abc"));
        assert_eq!(piece(4), Some("de_f"));
        assert_eq!(piece(5), Some("gh"));
        assert_eq!(piece(6), Some("item.htm?query=1"));
        assert_eq!(piece(7), None);
        assert_eq!(piece(-1), None);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(split_index("a::b::", "::", 1), Some("b"));
        assert_eq!(split_index("a::b::", "::", 2), Some(""));
        assert_eq!(split_index("no delimiter", ",", 0), Some("no delimiter"));
        assert_eq!(split_index("", ",", 0), None);
        assert_eq!(split_index("a b\tc", "", 2), Some("c"));
    }

    #[test]
    fn arrays_scalars_and_nulls() {
        let urls: ArrayRef = Arc::new(StringViewArray::from(vec![Some(URL), None, Some("a/b")]));
        let text = |v: Option<&str>| ColumnarValue::Scalar(ScalarValue::Utf8(v.map(String::from)));
        let out = call(
            &SplitIndex::default(),
            vec![
                ColumnarValue::Array(urls),
                text(Some("/")),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(1))),
            ],
            3,
        );
        assert_eq!(strings(out), owned(&[Some(""), None, Some("b")]));
        let out = call(
            &SplitIndex::default(),
            vec![
                text(Some("a/b")),
                text(None),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(0))),
            ],
            3,
        );
        assert!(matches!(
            out,
            ColumnarValue::Scalar(ScalarValue::Utf8(None))
        ));
    }
}
