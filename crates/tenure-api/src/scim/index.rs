//! Where the SCIM value index meets the store: `tenure_scim` resolves filters, sort keys and
//! index rows in its own plain types, and these map them onto the store's, which have the
//! same shape. The test here holds the store's SQL to `tenure_scim::index::eval`.

use tenure_scim::CompareOp;
use tenure_scim::index::{Cond, IndexedValue, SortKey};

/// A condition as the store runs it.
pub(super) fn store_cond(c: &Cond) -> tenure_store::Cond {
    match c {
        Cond::Cmp { attr, sub, op, val } => tenure_store::Cond::Cmp {
            attr: attr.clone(),
            sub: sub.clone(),
            op: store_op(*op),
            val: val.clone(),
        },
        Cond::Present { attr, sub } => tenure_store::Cond::Present {
            attr: attr.clone(),
            sub: sub.clone(),
        },
        Cond::And(cs) => tenure_store::Cond::And(cs.iter().map(store_cond).collect()),
        Cond::Or(cs) => tenure_store::Cond::Or(cs.iter().map(store_cond).collect()),
        Cond::Not(c) => tenure_store::Cond::Not(Box::new(store_cond(c))),
        Cond::Element { attr, cond } => tenure_store::Cond::Element {
            attr: attr.clone(),
            cond: Box::new(store_cond(cond)),
        },
    }
}

fn store_op(op: CompareOp) -> tenure_store::CondOp {
    match op {
        CompareOp::Eq => tenure_store::CondOp::Eq,
        CompareOp::Ne => tenure_store::CondOp::Ne,
        CompareOp::Co => tenure_store::CondOp::Co,
        CompareOp::Sw => tenure_store::CondOp::Sw,
        CompareOp::Ew => tenure_store::CondOp::Ew,
        CompareOp::Gt => tenure_store::CondOp::Gt,
        CompareOp::Ge => tenure_store::CondOp::Ge,
        CompareOp::Lt => tenure_store::CondOp::Lt,
        CompareOp::Le => tenure_store::CondOp::Le,
    }
}

/// A sort key as the store orders by it.
pub(super) fn store_sort(k: SortKey) -> tenure_store::SortKey {
    tenure_store::SortKey {
        attr: k.attr,
        sub: k.sub,
        descending: k.descending,
    }
}

/// Index rows as the store writes them.
pub(super) fn store_rows(rows: Vec<IndexedValue>) -> Vec<tenure_store::IndexedValue> {
    rows.into_iter()
        .map(|r| tenure_store::IndexedValue {
            attr: r.attr,
            idx: r.idx,
            sub: r.sub,
            val: r.val,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};
    use tenure_scim::Filter;
    use tenure_scim::index::eval;
    use tenure_scim::resource::{clean, index, sort_key, to_cond};
    use tenure_scim::schema::{self, USER_SCHEMAS};
    use tenure_store::{ScimUserRow, Store};

    /// A user with attributes drawn from small pools, so filters hit and miss.
    fn random_user(rng: &mut StdRng, i: usize) -> Value {
        let pick = |rng: &mut StdRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
        let mut u = json!({ "userName": format!("{}{i}@Example.com", pick(rng, &["ada", "Bob", "cy", "dana"])) });
        if rng.random_bool(0.7) {
            u["name"] =
                json!({ "familyName": pick(rng, &["Lovelace", "lovelace", "Hopper", "Ng"]) });
        }
        if rng.random_bool(0.6) {
            u["title"] = json!(pick(rng, &["Engineer", "Sales", "engineer lead"]));
        }
        if rng.random_bool(0.5) {
            u["active"] = json!(rng.random_bool(0.5));
        }
        let n = rng.random_range(0..3);
        let emails: Vec<Value> = (0..n)
        .map(|k| {
            json!({ "value": format!("{}{k}@{}", pick(rng, &["x", "y"]), pick(rng, &["example.com", "Example.org"])),
                    "type": pick(rng, &["work", "home"]) })
        })
        .collect();
        if !emails.is_empty() {
            u["emails"] = json!(emails);
        }
        if rng.random_bool(0.5) {
            u[schema::ENTERPRISE] = json!({ "department": pick(rng, &["Eng", "Sales"]) });
        }
        u
    }

    const FILTERS: &[&str] = &[
        "userName sw \"b\"",
        "userName co \"3@EX\"",
        "userName ew \".COM\"",
        "userName gt \"c\"",
        "userName le \"bob5@example.com\"",
        "name.familyName eq \"LOVELACE\"",
        "name.familyName ne \"Hopper\"",
        "title pr",
        "not (title pr)",
        "title co \"engineer\" and active eq true",
        "active eq \"False\" or title sw \"sal\"",
        "active ne true",
        "emails[type eq \"work\" and value ew \"example.com\"]",
        "emails[not (type eq \"work\")]",
        "emails[type eq \"home\"] and not (emails[type eq \"work\"])",
        "emails co \"@example.org\"",
        "emails.type eq \"work\"",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"eng\"",
        "name.familyName eq null",
        "title ne null and (userName sw \"a\" or userName sw \"d\")",
        "meta.created ge \"2020-01-01T00:00:00Z\"",
        "id pr",
    ];

    /// The SQL translation of every filter selects exactly the users the in-memory evaluator
    /// (the reference semantics) accepts, on SQLite and, with TENURE_TEST_DATABASE_URL, PostgreSQL.
    #[tokio::test]
    async fn sql_filters_agree_with_the_reference_evaluator() {
        let dir = tempfile::tempdir().unwrap();
        let store = match std::env::var("TENURE_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
        {
            Some(url) => {
                let name = format!("tenure_scimf_{}", uuid::Uuid::new_v4().simple());
                let db = tenure_store::create_scratch_database(&url, &name)
                    .await
                    .unwrap();
                Store::connect(&db).await.unwrap()
            }
            None => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
        };
        let mut rng = StdRng::seed_from_u64(7);
        let mut all = Vec::new();
        let mut tx = store.begin().await.unwrap();
        for i in 0..120 {
            let doc = clean(&USER_SCHEMAS, &random_user(&mut rng, i)).unwrap();
            let id = format!("u{i:03}");
            let rows = index(
                &USER_SCHEMAS,
                &id,
                &doc,
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
            );
            let row = ScimUserRow {
                id: id.clone(),
                user_name_ci: doc["userName"].as_str().unwrap().to_lowercase(),
                lifecycle: "none".into(),
                version: 1,
                created_at: 0,
                updated_at: 0,
                doc: Value::Object(doc).to_string(),
            };
            assert!(
                tenure_store::put_scim_user(tx.conn(), &row, None, &store_rows(rows.clone()))
                    .await
                    .unwrap()
            );
            all.push((id, rows));
        }
        tx.commit().await.unwrap();
        let mut c = store.reader().await.unwrap();
        let mut c5 = store.reader().await.unwrap();
        let fifth = tenure_store::scim_user(&mut c5, "u005")
            .await
            .unwrap()
            .unwrap();
        drop(c5);
        let by_name = format!("userName eq \"{}\"", fifth.user_name_ci.to_uppercase());
        let filters: Vec<&str> = std::iter::once(by_name.as_str())
            .chain(FILTERS.iter().copied())
            .collect();
        for f in filters {
            let cond = to_cond(&USER_SCHEMAS, &Filter::parse(f).unwrap()).unwrap();
            let (total, got) =
                tenure_store::search_scim_users(&mut c, Some(&store_cond(&cond)), None, 0, 1000)
                    .await
                    .unwrap();
            let got: Vec<String> = got.into_iter().map(|(r, _)| r.id).collect();
            let want: Vec<String> = all
                .iter()
                .filter(|(_, rows)| eval(rows, &cond))
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(got, want, "filter {f}");
            assert_eq!(total as usize, want.len(), "count of {f}");
            assert!(
                !want.is_empty() || f.contains("null"),
                "filter {f} matches nothing: a weak test"
            );
        }
        // Sorting: by userName ascending puts users in code point order of the lowercased name.
        let key = store_sort(sort_key(&USER_SCHEMAS, "userName", false).unwrap());
        let (_, sorted) = tenure_store::search_scim_users(&mut c, None, Some(&key), 0, 1000)
            .await
            .unwrap();
        let names: Vec<String> = sorted.iter().map(|(r, _)| r.user_name_ci.clone()).collect();
        let mut expect = names.clone();
        expect.sort();
        assert_eq!(names, expect);
        // Missing values sort last ascending.
        let key = store_sort(sort_key(&USER_SCHEMAS, "title", false).unwrap());
        let (_, sorted) = tenure_store::search_scim_users(&mut c, None, Some(&key), 0, 1000)
            .await
            .unwrap();
        let has_title: Vec<bool> = sorted
            .iter()
            .map(|(r, _)| r.doc.contains("\"title\""))
            .collect();
        let first_missing = has_title.iter().position(|h| !h).unwrap();
        assert!(has_title[first_missing..].iter().all(|h| !h));
        drop(c);
        store.close().await;
    }
}
