//! Tests of the statement parser: quiver's statements, Flink's spellings and
//! the errors of malformed scripts.

use super::*;

#[test]
fn parses_a_script_of_streaming_and_plain_statements() {
    let script = "CREATE STREAM Lines WITH (connector='socket', port = 9999, 'bootstrap.servers' = 'x');\n\
                  SET batch_interval = '200ms';\nSHOW STREAMS; DESCRIBE lines;\n\
                  SELECT count(*) FROM lines; EXPLAIN SELECT 1; CREATE VIEW v AS SELECT 1";
    let parsed = parse_script(script).unwrap();
    assert_eq!(parsed.len(), 7);
    match &parsed[0].statement {
        Statement::CreateStream {
            name,
            columns,
            options,
            ..
        } => {
            assert_eq!(name, "Lines");
            assert!(columns.is_empty());
            assert_eq!(options.get("connector"), Some("socket"));
            assert_eq!(options.get("port"), Some("9999"));
            assert_eq!(options.get("bootstrap.servers"), Some("x"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&parsed[1].statement, Statement::Set { name, value } if name == "batch_interval" && value == "200ms")
    );
    assert!(matches!(parsed[2].statement, Statement::ShowStreams));
    assert!(matches!(parsed[4].statement, Statement::Query(_)));
    assert_eq!(parsed[4].text, "SELECT count(*) FROM lines");
    assert_eq!(parsed[4].line, 4);
    assert!(matches!(parsed[5].statement, Statement::Explain(_)));
    assert!(matches!(parsed[6].statement, Statement::CreateView { .. }));
}

#[test]
fn declared_columns_are_kept() {
    let parsed = parse_script(
        "CREATE STREAM s (a BIGINT NOT NULL, b VARCHAR) WITH (connector = 'stdin', format = 'csv')",
    )
    .unwrap();
    match &parsed[0].statement {
        Statement::CreateStream { columns, .. } => assert_eq!(columns.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_carry_the_position() {
    let err = parse_script("SELECT 1;\nSELEC x FROM y").unwrap_err();
    assert!(err.to_string().contains("Line: 2"), "{err}");
    let err = parse_script("CREATE STREAM s WITH (connector 'x')").unwrap_err();
    assert!(err.to_string().contains("Expected: ="), "{err}");
}

#[test]
fn parses_flink_ddl_views_and_window_table_functions() {
    let ddl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/nexmark/ddl.sql"))
        .unwrap();
    let parsed = parse_script(&ddl).unwrap();
    match &parsed[0].statement {
        Statement::CreateStream {
            name,
            columns,
            computed,
            watermark,
            options,
            ..
        } => {
            assert_eq!(name, "datagen");
            assert_eq!(columns.len(), 4);
            assert!(
                columns[3]
                    .data_type
                    .to_string()
                    .starts_with("STRUCT<auction BIGINT"),
                "{}",
                columns[3].data_type
            );
            assert_eq!(computed[0].0, "dateTime");
            let (column, expr) = watermark.as_ref().unwrap();
            assert_eq!(column, "dateTime");
            assert_eq!(expr.to_string(), "`dateTime` - INTERVAL '4' SECOND");
            assert_eq!(options.get("connector"), Some("nexmark"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&parsed[1].statement, Statement::CreateView { name, .. } if name == "person"));
    let q = parse_script(
        "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)); \
         CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole'); \
         CREATE TABLE plain (a BIGINT); CREATE TABLE c AS SELECT 1; \
         CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'",
    )
    .unwrap();
    assert!(
        q[0].text.contains("TABLE bid"),
        "text keeps what was written"
    );
    match &q[0].statement {
        Statement::Query(query) => assert!(
            query
                .to_string()
                .contains("TUMBLE(bid, DESCRIPTOR(`dateTime`)"),
            "{query}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&q[1].statement, Statement::CreateStream { .. }));
    assert!(matches!(&q[2].statement, Statement::Other(_)));
    assert!(matches!(&q[3].statement, Statement::Other(_)));
    assert!(
        matches!(&q[4].statement, Statement::CreateFunction { name, class } if name == "count_char" && class.ends_with("CountChar"))
    );
}

#[test]
fn session_partition_by_becomes_a_named_argument() {
    let query = |sql: &str| match &parse_script(sql).unwrap()[0].statement {
        Statement::Query(q) => q.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        query(
            "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(ts), INTERVAL '1' SECOND))"
        ),
        "SELECT * FROM TABLE(SESSION(bid, partition_by => bidder, DESCRIPTOR(ts), INTERVAL '1' SECOND))"
    );
    assert_eq!(
        query("SELECT * FROM SESSION(bid partition   by (a, b), ts, x)"),
        "SELECT * FROM SESSION(bid, partition_by => (a, b), ts, x)"
    );
    // PARTITION BY elsewhere is left alone.
    let text = query(
        "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM s GROUP BY SESSION(ts, INTERVAL '1' SECOND)",
    );
    assert!(text.contains("OVER (PARTITION BY a ORDER BY b)"), "{text}");
}

#[test]
fn parses_drop_external_tables_and_flink_keys() {
    let parsed = parse_script(
        "DROP STREAM IF EXISTS s; DROP VIEW v; DROP TABLE t; \
         CREATE EXTERNAL TABLE e (a BIGINT) STORED AS CSV LOCATION 'x.csv' OPTIONS ('format.has_header' 'true'); \
         CREATE STREAM k (a BIGINT PRIMARY KEY NOT ENFORCED, ts TIMESTAMP(3), WATERMARK FOR ts) WITH (connector = 'stdin'); \
         CREATE TABLE k2 (a BIGINT, b INT NOT NULL, CONSTRAINT pk PRIMARY KEY (a, b) NOT ENFORCED) WITH (connector = 'stdin')",
    )
    .unwrap();
    assert!(
        matches!(&parsed[0].statement, Statement::Drop { kind: DropKind::Stream, names, if_exists: true, .. } if names == &["s"])
    );
    assert!(matches!(
        &parsed[1].statement,
        Statement::Drop {
            kind: DropKind::View,
            ..
        }
    ));
    assert!(matches!(
        &parsed[2].statement,
        Statement::Drop {
            kind: DropKind::Table,
            ..
        }
    ));
    assert!(
        matches!(&parsed[3].statement, Statement::DataFusion(s) if s.to_string().contains("CREATE EXTERNAL TABLE e")),
        "{:?}",
        parsed[3].statement
    );
    assert_eq!(parsed[3].text.chars().last(), Some(')'));
    match &parsed[4].statement {
        Statement::CreateStream {
            primary_key,
            watermark: Some((column, expr)),
            ..
        } => {
            assert_eq!(primary_key, &["a"]);
            assert_eq!((column.as_str(), expr.to_string().as_str()), ("ts", "ts"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&parsed[5].statement, Statement::CreateStream { primary_key, columns, .. } if primary_key == &["a", "b"] && columns.len() == 2)
    );
    let err =
        parse_script("CREATE STREAM s (a BIGINT, PRIMARY KEY (a)) WITH (connector = 'stdin')")
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("write PRIMARY KEY (...) NOT ENFORCED"),
        "{err}"
    );
}

#[test]
fn parses_background_query_statements() {
    let parsed = parse_script(
        "INSERT INTO Out SELECT * FROM s; \
         CREATE SINK big AS SELECT a FROM s WHERE a > 1 WITH (connector = 'parquet', path = 'out'); \
         CREATE SINK IF NOT EXISTS b2 WITH (connector = 'print') AS SELECT 1; \
         SHOW QUERIES; STOP QUERY big",
    )
    .unwrap();
    assert!(matches!(&parsed[0].statement, Statement::Insert { table, .. } if table == "Out"));
    match &parsed[1].statement {
        Statement::CreateSink {
            name,
            query,
            options,
            ..
        } => {
            assert_eq!(name, "big");
            assert_eq!(query.to_string(), "SELECT a FROM s WHERE a > 1");
            assert_eq!(options.get("path"), Some("out"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&parsed[2].statement, Statement::CreateSink { if_not_exists: true, options, .. } if options.get("connector") == Some("print"))
    );
    assert!(matches!(parsed[3].statement, Statement::ShowQueries));
    assert!(matches!(&parsed[4].statement, Statement::StopQuery(n) if n == "big"));
}

#[test]
fn parses_show_progress_with_and_without_a_limit() {
    let parsed = parse_script("SHOW PROGRESS big; show progress big limit 3").unwrap();
    assert!(
        matches!(&parsed[0].statement, Statement::ShowProgress { name, limit: None } if name == "big")
    );
    assert!(
        matches!(&parsed[1].statement, Statement::ShowProgress { name, limit: Some(3) } if name == "big")
    );
    assert!(parse_script("SHOW PROGRESS big LIMIT x").is_err());
}

#[test]
fn query_text_is_the_select_a_statement_runs() {
    let parsed = parse_script(
        "SELECT a FROM s; INSERT INTO t SELECT a FROM s; \
         CREATE SINK k AS SELECT a FROM s WITH (connector = 'blackhole'); \
         EXPLAIN SELECT a FROM s; SHOW QUERIES",
    )
    .unwrap();
    let texts: Vec<Option<String>> = parsed.iter().map(ParsedStatement::query_text).collect();
    let select = Some("SELECT a FROM s".to_string());
    assert_eq!(
        texts,
        [select.clone(), select.clone(), select.clone(), select, None]
    );
}
