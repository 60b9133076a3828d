//! People, clients and engagements.

use super::*;

/// The person with this HR id (what is left of them once forgotten).
pub async fn get_person(c: &mut Conn, id: &str) -> Result<Option<Person>> {
    let sql = format!("{} WHERE id = $1", crate::privacy::PERSON_SELECT);
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| crate::privacy::person_row(c, &r)).transpose()
}

/// Stores a person, their record sealed under their key (made now if they have none), and
/// the values the people list filters on. What is left of a forgotten person
/// ([`Person::forgotten`], written back by a run that read it) stays as it is: no key, no
/// email index, still forgotten.
pub async fn upsert_person(c: &mut Conn, p: &Person, now: i64) -> Result<()> {
    upsert_person_after(c, p, None, now).await
}

/// Stores a person as [`upsert_person`] does, given `before`: the person as the caller read
/// them in this same transaction (`None`: not known). The person is queued for the search
/// index ([`index_pending_people`]) only when the name or the email changed, so a leave or a
/// transfer does not delete and write again some 25 entries on pages all over the index.
pub async fn upsert_person_after(
    c: &mut Conn,
    p: &Person,
    before: Option<&Person>,
    now: i64,
) -> Result<()> {
    let [department, worker_type, manager, _] = person_columns(p);
    let tombstone = *p == Person::forgotten(p.id.clone());
    let keys = if tombstone {
        Default::default()
    } else {
        crate::privacy::keys_for(c, &[p.id.as_str()], now).await?
    };
    let data = crate::vault::seal(
        keys.get(&p.id),
        crate::privacy::PEOPLE_DATA,
        &p.id,
        &to_json(p),
    );
    let search = crate::privacy::search_text(c, p);
    let email_index = (!tombstone).then(|| c.vault().email_index(&p.email));
    db::query(
        "INSERT INTO people (id, status, data, updated_at, department, worker_type, manager, search, email_index)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data, updated_at = excluded.updated_at,
           department = excluded.department, worker_type = excluded.worker_type, manager = excluded.manager,
           search = excluded.search, email_index = excluded.email_index,
           forgotten_at = CASE WHEN excluded.email_index IS NULL THEN people.forgotten_at END",
    )
    .bind(p.id.clone())
    .bind(p.status.as_str())
    .bind(data)
    .bind(now)
    .bind(department)
    .bind(worker_type)
    .bind(manager)
    .bind(search)
    .bind(email_index)
    .execute(&mut *c)
    .await?;
    let indexed_as_is = before.is_some_and(|b| {
        !tombstone
            && b.name == p.name
            && b.email == p.email
            && *b != Person::forgotten(b.id.clone())
    });
    if indexed_as_is {
        return Ok(());
    }
    if tombstone {
        return index_person_search(c, p, true).await;
    }
    queue_person_search(c, &p.id).await
}

/// Queues `person` for [`index_pending_people`] (on a sealing vault; a plain one has no search
/// index): their entries are written later, with many other people's in one transaction.
async fn queue_person_search(c: &mut Conn, person: &str) -> Result<()> {
    if !c.vault().seals() {
        return Ok(());
    }
    db::query(
        "INSERT INTO people_search_pending (person_id, generation) VALUES ($1, 0)
         ON CONFLICT (person_id) DO UPDATE SET generation = people_search_pending.generation + 1",
    )
    .bind(person.to_string())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Writes the search index entries of up to `limit` people queued by [`upsert_person`], in
/// person id order, and takes them off the queue; returns how many it took (0: none queued).
///
/// One pass writes all their entries together, so that entries of the same pass share the
/// index's pages, where one person's 25 or so entries written alone each dirty a page of
/// their own. A person queued again while the pass ran (a newer generation) stays queued;
/// one forgotten meanwhile gets no entries. Entries another pass wrote already are left as
/// they are, so two instances indexing the same people do not conflict.
pub async fn index_pending_people(c: &mut Conn, limit: i64) -> Result<usize> {
    if !c.vault().seals() {
        return Ok(0);
    }
    let queued = db::query(
        "SELECT person_id, generation FROM people_search_pending ORDER BY person_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
    .collect::<Result<Vec<_>>>()?;
    if queued.is_empty() {
        return Ok(0);
    }
    let sqlite = c.is_sqlite();
    let ids: Vec<String> = queued.iter().map(|(id, _)| id.clone()).collect();
    let mut entries: Vec<(String, String)> = Vec::with_capacity(ids.len() * 26);
    // A person forgotten since being queued is a tombstone now, with nothing to index.
    for p in people_by_ids(c, &ids).await? {
        if p == Person::forgotten(p.id.clone()) {
            continue;
        }
        let mut tokens = c.vault().search_tokens(&p.name, &p.email);
        tokens.push(SEARCH_INDEXED.to_string());
        entries.extend(tokens.into_iter().map(|t| (t, p.id.clone())));
    }
    for chunk in ids.chunks(500) {
        let mut sql = String::from("DELETE FROM people_search_tokens WHERE person_id IN ");
        in_list(&mut sql, chunk.len(), sqlite, 1);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        q.execute(&mut *c).await?;
    }
    // In the primary key's order: each page of the index is reached once, in turn.
    entries.sort_unstable();
    entries.dedup();
    bulk!(
        c,
        entries,
        2,
        "INSERT INTO people_search_tokens (token, person_id) VALUES ",
        " ON CONFLICT DO NOTHING",
        |q, e| { q.bind(e.0.clone()).bind(e.1.clone()) }
    );
    bulk!(
        c,
        queued,
        2,
        "DELETE FROM people_search_pending WHERE (person_id, generation) IN (VALUES ",
        ")",
        |q, e| { q.bind(e.0.clone()).bind(e.1) }
    );
    Ok(queued.len())
}

/// Whether a person is queued for [`index_pending_people`].
pub async fn any_person_queued_for_search(c: &mut Conn) -> Result<bool> {
    Ok(db::query("SELECT 1 FROM people_search_pending LIMIT 1")
        .fetch_optional(&mut *c)
        .await?
        .is_some())
}

/// What the search index holds for each person it indexed, besides their tokens: so that a
/// person indexed with no word at all is told from one not indexed yet.
pub(crate) const SEARCH_INDEXED: &str = "-";

/// Replaces `p`'s entries in the search index of a sealing vault (see
/// [`crate::Vault::search_tokens`]) now, and takes them off the queue of
/// [`index_pending_people`]; a tombstone has none.
pub(crate) async fn index_person_search(c: &mut Conn, p: &Person, tombstone: bool) -> Result<()> {
    if !c.vault().seals() {
        return Ok(());
    }
    db::query("DELETE FROM people_search_tokens WHERE person_id = $1")
        .bind(p.id.clone())
        .execute(&mut *c)
        .await?;
    db::query("DELETE FROM people_search_pending WHERE person_id = $1")
        .bind(p.id.clone())
        .execute(&mut *c)
        .await?;
    if tombstone {
        return Ok(());
    }
    let mut tokens = c.vault().search_tokens(&p.name, &p.email);
    tokens.push(SEARCH_INDEXED.to_string());
    bulk!(
        c,
        tokens,
        2,
        "INSERT INTO people_search_tokens (token, person_id) VALUES ",
        "",
        |q, t| { q.bind(t.clone()).bind(p.id.clone()) }
    );
    Ok(())
}

/// People in id order, after `after`, at most `limit` (see [`crate::people_matching`]).
pub async fn list_people(c: &mut Conn, after: Option<&str>, limit: i64) -> Result<Vec<Person>> {
    let filter = crate::PeopleFilter {
        after,
        limit,
        ..Default::default()
    };
    crate::people_matching(c, &filter).await
}

/// How many people are stored.
pub async fn count_people(c: &mut Conn) -> Result<i64> {
    db::query("SELECT COUNT(*) FROM people")
        .fetch_one(c)
        .await?
        .try_get(0)
}

/// Stores a client.
pub async fn upsert_client(c: &mut Conn, client: &Client) -> Result<()> {
    db::query("INSERT INTO clients (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = excluded.data")
        .bind(client.id.clone())
        .bind(to_json(client))
        .execute(c)
        .await?;
    Ok(())
}

/// All stored clients.
pub async fn list_clients(c: &mut Conn) -> Result<Vec<Client>> {
    let rows = db::query("SELECT data FROM clients ORDER BY id")
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| json(&r.try_get::<String, _>(0)?))
        .collect()
}

/// The stored clients among `ids` (those an event carried in full).
pub async fn clients_by_ids(c: &mut Conn, ids: &[&str]) -> Result<Vec<Client>> {
    let mut out = Vec::new();
    let sqlite = c.is_sqlite();
    for chunk in ids.chunks(500) {
        let mut sql = String::from("SELECT data FROM clients WHERE id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(json(&r.try_get::<String, _>(0)?)?);
        }
    }
    Ok(out)
}

/// The person's engagements, active or not.
pub async fn engagements_of(c: &mut Conn, person: &str) -> Result<Vec<Engagement>> {
    let rows = db::query("SELECT data FROM engagements WHERE person_id = $1 ORDER BY id")
        .bind(person.to_string())
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| json(&r.try_get::<String, _>(0)?))
        .collect()
}

/// The people a client's terms bear on: those with an active engagement with it and those
/// holding (or about to hold) one of `entitlements` (the client's, from the configuration).
pub async fn people_bound_by_client(
    c: &mut Conn,
    client: &str,
    entitlements: &[&str],
) -> Result<Vec<String>> {
    let mut people: std::collections::BTreeSet<String> = Default::default();
    let rows =
        db::query("SELECT DISTINCT person_id FROM engagements WHERE client_id = $1 AND active = 1")
            .bind(client.to_string())
            .fetch_all(&mut *c)
            .await?;
    for r in rows {
        people.insert(r.try_get(0)?);
    }
    let sqlite = c.is_sqlite();
    for chunk in entitlements.chunks(500) {
        let mut sql = String::from(
            "SELECT DISTINCT person_id FROM grants
             WHERE state IN ('granted', 'pending', 'awaiting_approval', 'uncertain') AND entitlement IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for e in chunk {
            q = q.bind(e.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            people.insert(r.try_get(0)?);
        }
    }
    Ok(people.into_iter().collect())
}

/// Stores an engagement.
pub async fn upsert_engagement(c: &mut Conn, e: &Engagement) -> Result<()> {
    db::query(
        "INSERT INTO engagements (id, person_id, client_id, active, data) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET active = excluded.active, data = excluded.data",
    )
    .bind(e.id.clone())
    .bind(e.person_id.clone())
    .bind(e.client_id.clone())
    .bind(e.active as i64)
    .bind(to_json(e))
    .execute(c)
    .await?;
    Ok(())
}
