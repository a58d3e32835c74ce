use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;

use super::*;

fn view(name: &str) -> Def {
    Def::View(ViewDef {
        name: name.to_string(),
        sql: "SELECT 1".into(),
        reads: BTreeSet::new(),
        proctime_columns: BTreeSet::new(),
    })
}

fn sink(name: &str) -> Def {
    Def::Sink(SinkDef {
        name: name.to_string(),
        connector: "blackhole".into(),
        schema: Arc::new(Schema::empty()),
        options: Default::default(),
    })
}

fn exists(name: &str, kind: Kind) -> Result<(), AlreadyExists> {
    Err(AlreadyExists {
        name: name.to_string(),
        kind,
    })
}

#[test]
fn a_name_names_one_object_of_any_kind() {
    let catalog = Catalog::default();
    assert_eq!(catalog.insert_new(vec![view("v")], |_| false), Ok(()));
    assert_eq!(
        catalog.insert_new(vec![sink("v")], |_| false),
        exists("v", Kind::View)
    );
    assert_eq!(
        catalog.insert_new(vec![view("v")], |_| false),
        exists("v", Kind::View)
    );
    assert_eq!(
        catalog.insert_new(vec![sink("t")], |n| n == "t"),
        exists("t", Kind::Table)
    );
    assert_eq!(catalog.snapshot().names(), vec!["v".to_string()]);
}

#[test]
fn insert_new_adds_all_or_none() {
    let catalog = Catalog::default();
    catalog.insert_new(vec![sink("b")], |_| false).unwrap();
    assert_eq!(
        catalog.insert_new(vec![sink("a"), view("b")], |_| false),
        exists("b", Kind::SinkTable)
    );
    assert_eq!(
        catalog.insert_new(vec![sink("c"), view("c")], |_| false),
        exists("c", Kind::SinkTable)
    );
    assert_eq!(catalog.snapshot().names(), vec!["b".to_string()]);
}

#[test]
fn replace_view_replaces_only_a_view() {
    let catalog = Catalog::default();
    catalog.insert_new(vec![sink("s")], |_| false).unwrap();
    let Def::View(v) = view("v") else {
        unreachable!()
    };
    assert_eq!(catalog.replace_view(v.clone(), |_| false), Ok(()));
    assert_eq!(catalog.replace_view(v, |_| false), Ok(()));
    assert_eq!(catalog.snapshot().views.len(), 1);
    let Def::View(s) = view("s") else {
        unreachable!()
    };
    assert_eq!(
        catalog.replace_view(s, |_| false),
        exists("s", Kind::SinkTable)
    );
}

#[test]
fn concurrent_inserts_of_one_name_admit_one() {
    let catalog = Arc::new(Catalog::default());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let catalog = catalog.clone();
            std::thread::spawn(move || {
                let def = if i % 2 == 0 { view("x") } else { sink("x") };
                catalog.insert_new(vec![def], |_| false).is_ok()
            })
        })
        .collect();
    let admitted = threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .filter(|ok| *ok)
        .count();
    assert_eq!(admitted, 1);
}
