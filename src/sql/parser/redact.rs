//! Statement text as errors and the REPL echo it, with the values of
//! `'properties.<name>' = '...'` options (passwords, keys for librdkafka)
//! replaced by `'***'`: the connectors never print them, and neither may the
//! "in statement at line N: ..." that follows their errors. The properties
//! of [`NOT_SECRET`] (protocol, mechanism, certificate paths) are kept, as
//! the connectors' own messages keep them.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::options::NOT_SECRET;

/// `text` with every secret `properties.*` option value replaced by
/// `'***'`; the text unchanged when it has none (or does not tokenize).
pub(super) fn redact_secrets(text: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return text.to_string();
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let mut secret = Vec::new();
    for w in significant.windows(3) {
        let is_secret = match &tokens[w[0]] {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => is_secret_property(s),
            Token::Word(word) => is_secret_property(&word.value),
            _ => false,
        };
        if is_secret
            && tokens[w[1]] == Token::Eq
            && matches!(tokens[w[2]], Token::SingleQuotedString(_))
        {
            secret.push(w[2]);
        }
    }
    if secret.is_empty() {
        return text.to_string();
    }
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            if secret.contains(&i) {
                "'***'".to_string()
            } else {
                token.to_string()
            }
        })
        .collect()
}

/// Whether `key` is `properties.<name>` with a `<name>` not in [`NOT_SECRET`].
fn is_secret_property(key: &str) -> bool {
    const PREFIX: &str = "properties.";
    match key.get(..PREFIX.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(PREFIX) && key.len() > PREFIX.len() => {
            !NOT_SECRET.contains(&key[PREFIX.len()..].to_ascii_lowercase().as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn property_values_are_replaced_and_the_rest_kept() {
        let sql = "CREATE STREAM s (a INT) WITH (connector = 'kafka', 'properties.sasl.password' = 'hunter2', \
                   \"PROPERTIES.ssl.key.password\" = 'k3y', topic = 'properties.x')";
        let shown = redact_secrets(sql);
        assert!(
            !shown.contains("hunter2") && !shown.contains("k3y"),
            "{shown}"
        );
        assert_eq!(shown.matches("'***'").count(), 2, "{shown}");
        assert!(shown.contains("topic = 'properties.x'"), "{shown}");
        assert!(
            shown.starts_with("CREATE STREAM s (a INT) WITH (connector = 'kafka'"),
            "{shown}"
        );
    }

    #[test]
    fn protocol_mechanism_and_certificate_paths_are_kept() {
        let sql = "CREATE STREAM s (a INT) WITH ('properties.security.protocol' = 'SASL_SSL', \
                   'properties.sasl.mechanisms' = 'PLAIN', 'properties.ssl.ca.location' = '/etc/ca.pem', \
                   'properties.sasl.password' = 'hunter2')";
        let shown = redact_secrets(sql);
        for kept in ["'SASL_SSL'", "'PLAIN'", "'/etc/ca.pem'"] {
            assert!(shown.contains(kept), "{kept} in {shown}");
        }
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown.matches("'***'").count(), 1, "{shown}");
    }

    #[test]
    fn a_key_with_a_multibyte_character_at_the_prefix_end_is_not_a_property() {
        // Byte 11 falls inside `é`: slicing there used to panic.
        let sql = "CREATE STREAM s (a INT) WITH ('propertiesé.x' = 'v')";
        assert_eq!(redact_secrets(sql), sql);
    }

    #[test]
    fn text_without_properties_is_unchanged() {
        let plain = "SELECT a, 'x'  FROM t\n WHERE b = 'c'";
        assert_eq!(redact_secrets(plain), plain);
    }
}
