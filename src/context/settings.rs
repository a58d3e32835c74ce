//! `SET` (quiver's settings and `datafusion.*`) and `CREATE FUNCTION`.

use std::time::Duration;

use datafusion::sql::sqlparser::ast;

use super::{Context, Output, lock};
use crate::error::Error;

impl Context {
    pub(super) async fn set(&self, name: &str, value: &str) -> Result<Output, Error> {
        match name {
            "batch_interval" => {
                let interval = humantime::parse_duration(value).map_err(|e| {
                    Error::Catalog(format!(
                        "batch_interval = '{value}' is invalid: {e}; write e.g. '200ms' or '1s'"
                    ))
                })?;
                if interval < Duration::from_millis(1) {
                    return Err(Error::Catalog("batch_interval must be at least 1ms".into()));
                }
                lock(&self.config).batch_interval = interval;
                Ok(Output::Message(format!(
                    "batch_interval = {}",
                    humantime::format_duration(interval)
                )))
            }
            "incremental_aggregates" => {
                let on = match value.to_ascii_lowercase().as_str() {
                    "true" | "on" => true,
                    "false" | "off" => false,
                    _ => {
                        return Err(Error::Catalog(format!(
                            "incremental_aggregates = '{value}' is invalid; write true or false"
                        )));
                    }
                };
                lock(&self.config).incremental_aggregates = on;
                Ok(Output::Message(format!("incremental_aggregates = {on}")))
            }
            _ if name.starts_with("datafusion.") => {
                // One identifier: DataFusion joins a name's parts with dots.
                self.rows_on_datafusion(ast::Statement::Set(ast::Set::SingleAssignment {
                    scope: None,
                    hivevar: false,
                    variable: ast::ObjectName::from(vec![ast::Ident::new(name)]),
                    values: vec![ast::Expr::Value(
                        ast::Value::SingleQuotedString(value.to_string()).into(),
                    )],
                }))
                .await
            }
            _ => Err(Error::Catalog(format!(
                "unknown setting '{name}'; valid settings are: {}, datafusion.*",
                SETTINGS.join(", ")
            ))),
        }
    }

    /// `CREATE FUNCTION name AS 'class'`: Flink's UDF registration. quiver
    /// cannot load Java classes; functions it has built in are accepted.
    pub(super) fn create_function(&self, name: &str, class: &str) -> Result<Output, Error> {
        let state = self.tables.state();
        if state
            .scalar_functions()
            .contains_key(&name.to_ascii_lowercase())
        {
            Ok(Output::Message(format!(
                "function {name} is built into quiver; '{class}' is not loaded"
            )))
        } else {
            Err(Error::Catalog(format!(
                "cannot load '{class}': quiver does not run Java UDFs, and has no built-in function '{name}'"
            )))
        }
    }
}

/// Settings `SET` accepts besides `datafusion.*`.
const SETTINGS: &[&str] = &["batch_interval", "incremental_aggregates"];
