//! `REGEXP_EXTRACT(str, regex[, extractIndex])` with Flink's semantics: the
//! `extractIndex`-th capture group of the first match of `regex` in `str`
//! (0 = the whole match, the default when the index is omitted). NULL when
//! an argument is NULL, nothing matches, the index is negative or beyond the
//! pattern's groups, or the group took no part in the match. Nexmark q21
//! uses it as `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`.
//!
//! Patterns use the Rust `regex` syntax (close to Java's, but without
//! look-around and backreferences); an invalid pattern is an error, where
//! Flink would log it and return NULL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::types::{NativeType, logical_int64, logical_string};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    TypeSignatureClass, Volatility,
};
use regex::Regex;

use super::args::{Ints, Strings, result, rows};

const NAME: &str = "regexp_extract";

/// The `regexp_extract` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtract {
    signature: Signature,
}

impl Default for RegexpExtract {
    fn default() -> Self {
        let text = || Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        let index = Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            vec![TypeSignatureClass::Integer],
            NativeType::Int64,
        );
        RegexpExtract {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Coercible(vec![text(), text()]),
                    TypeSignature::Coercible(vec![text(), text(), index]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// Compiles `pattern`, or says why it is not a valid regular expression.
fn compile(pattern: &str) -> Result<Regex> {
    match Regex::new(pattern) {
        Ok(regex) => Ok(regex),
        Err(e) => exec_err!(
            "{NAME}: invalid regular expression '{pattern}' (Rust regex syntax: no look-around or backreferences): {e}"
        ),
    }
}

/// The `index`-th group of the first match of `regex` in `text`.
fn extract<'t>(regex: &Regex, text: &'t str, index: i64) -> Option<&'t str> {
    let index = usize::try_from(index).ok()?;
    if index >= regex.captures_len() {
        return None;
    }
    if index == 0 {
        return regex.find(text).map(|m| m.as_str());
    }
    regex.captures(text)?.get(index).map(|m| m.as_str())
}

impl ScalarUDFImpl for RegexpExtract {
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
        if !(2..=3).contains(&values.len()) {
            return exec_err!(
                "{NAME} takes (str, regex[, extractIndex]), not {} arguments",
                values.len()
            );
        }
        let text = Strings::new(NAME, "str", &values[0])?;
        let patterns = Strings::new(NAME, "regex", &values[1])?;
        let index = match values.get(2) {
            Some(arg) => Ints::new(NAME, "extractIndex", arg)?,
            None => Ints::Scalar(Some(0)),
        };
        let n = rows(values, args.number_rows);
        let mut out = StringBuilder::with_capacity(n, n * 8);
        // A scalar pattern is compiled once; per-row patterns once each.
        let fixed = match patterns.scalar() {
            Some(Some(pattern)) => Some(compile(pattern)?),
            _ => None,
        };
        let mut cache: HashMap<&str, Regex> = HashMap::new();
        for i in 0..n {
            let (Some(s), Some(pattern), Some(idx)) = (text.get(i), patterns.get(i), index.get(i))
            else {
                out.append_null();
                continue;
            };
            let regex = match &fixed {
                Some(regex) => regex,
                None => {
                    if !cache.contains_key(pattern) {
                        cache.insert(pattern, compile(pattern)?);
                    }
                    &cache[pattern]
                }
            };
            out.append_option(extract(regex, s, idx));
        }
        result(values, Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::functions::test_util::{call, owned, strings};
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, StringViewArray};
    use datafusion::common::ScalarValue;

    const Q21: &str = "(&|^)channel_id=([^&]*)";

    fn text(v: Option<&str>) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(v.map(str::to_string)))
    }

    fn int(v: Option<i64>) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(v))
    }

    fn scalar(args: Vec<ColumnarValue>) -> Option<String> {
        match call(&RegexpExtract::default(), args, 1) {
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => v,
            other => panic!("expected a Utf8 scalar, got {other:?}"),
        }
    }

    #[test]
    fn groups_whole_match_and_nulls() {
        let url = Some("https://x/item.htm?query=1&channel_id=42&x=y");
        assert_eq!(
            scalar(vec![text(url), text(Some(Q21)), int(Some(2))]).as_deref(),
            Some("42")
        );
        assert_eq!(
            scalar(vec![text(url), text(Some(Q21)), int(Some(1))]).as_deref(),
            Some("&")
        );
        assert_eq!(
            scalar(vec![text(url), text(Some(Q21)), int(Some(0))]).as_deref(),
            Some("&channel_id=42")
        );
        // Flink's default index is 0, the whole match.
        assert_eq!(
            scalar(vec![text(Some("foothebar")), text(Some("foo(.*?)(bar)"))]).as_deref(),
            Some("foothebar")
        );
        assert_eq!(
            scalar(vec![
                text(Some("foothebar")),
                text(Some("foo(.*?)(bar)")),
                int(Some(2))
            ])
            .as_deref(),
            Some("bar")
        );
        // At the start of the string, `^` matches and group 1 is empty.
        assert_eq!(
            scalar(vec![
                text(Some("channel_id=7")),
                text(Some(Q21)),
                int(Some(1))
            ])
            .as_deref(),
            Some("")
        );
        // No match, index out of range, negative index, NULL anywhere.
        assert_eq!(
            scalar(vec![
                text(Some("https://x/")),
                text(Some(Q21)),
                int(Some(2))
            ]),
            None
        );
        assert_eq!(scalar(vec![text(url), text(Some(Q21)), int(Some(3))]), None);
        assert_eq!(
            scalar(vec![text(url), text(Some(Q21)), int(Some(-1))]),
            None
        );
        assert_eq!(
            scalar(vec![text(None), text(Some(Q21)), int(Some(2))]),
            None
        );
        assert_eq!(scalar(vec![text(url), text(None), int(Some(2))]), None);
        assert_eq!(scalar(vec![text(url), text(Some(Q21)), int(None)]), None);
        // A group that took no part in the match.
        assert_eq!(
            scalar(vec![text(Some("ab")), text(Some("a(x)?b")), int(Some(1))]),
            None
        );
    }

    #[test]
    fn arrays_of_every_string_type() {
        let urls = [
            "a=1&channel_id=9",
            "channel_id=",
            "none",
            "x&channel_id=abc&d",
        ];
        fn with_null<'a>(v: &[&'a str]) -> Vec<Option<&'a str>> {
            v.iter().map(|s| Some(*s)).chain([None]).collect()
        }
        let expected = vec![Some("9"), Some(""), None, Some("abc"), None];
        let inputs: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(with_null(&urls))),
            Arc::new(datafusion::arrow::array::LargeStringArray::from(with_null(
                &urls,
            ))),
            Arc::new(StringViewArray::from(with_null(&urls))),
        ];
        for input in inputs {
            let out = call(
                &RegexpExtract::default(),
                vec![ColumnarValue::Array(input), text(Some(Q21)), int(Some(2))],
                5,
            );
            assert_eq!(strings(out), owned(&expected));
        }
        // Per-row patterns and indices.
        let patterns: ArrayRef = Arc::new(StringArray::from(vec!["(a)(b)", "(a)(b)", "x", "(a"]));
        let indices: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(0), None]));
        let out = call(
            &RegexpExtract::default(),
            vec![
                text(Some("ab")),
                ColumnarValue::Array(patterns),
                ColumnarValue::Array(indices),
            ],
            4,
        );
        assert_eq!(strings(out), owned(&[Some("a"), Some("b"), None, None]));
    }

    #[test]
    fn invalid_pattern_is_an_error() {
        let err = RegexpExtract::default()
            .invoke_with_args(crate::sql::functions::test_util::args(
                vec![text(Some("a")), text(Some("(a")), int(Some(1))],
                1,
            ))
            .expect_err("unclosed group");
        assert!(
            err.to_string().contains("invalid regular expression '(a'"),
            "{err}"
        );
    }
}
