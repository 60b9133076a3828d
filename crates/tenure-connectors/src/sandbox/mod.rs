//! `sandbox`: a simulated target system stored in tenure's own database.
//!
//! It behaves like a real one where it matters: calls take time (`latency_ms`), some fail
//! (`failure_rate`; a share of those, `timeout_share`, half by default, after the change was
//! made, like a timeout after the server acted), granting on a missing account is refused, and a repeated operation id is answered
//! as "already done". It counts every call and every effective change, durably, so tests and
//! the demo can prove that nothing was lost or applied twice.
//!
//! `inventory` pages through a system's accounts in person id order, two range scans a page.
//!
//! All sandbox systems share two writer tasks, one for leavers' calls and one for the rest, that
//! apply calls in batches, one transaction per batch (group commit), and answer each call only
//! after its batch is on disk.

use crate::{
    Connector, ConnectorError, Inventory, InventoryAccount, InventoryPages, Op, RemoteAccount,
    attribute,
};
use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::run::Priority;
use tenure_core::{Entitlement, Person};
use tenure_store::db::{self, AssertSqlSafe};
use tenure_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sandbox_accounts (system TEXT NOT NULL, person_id TEXT NOT NULL,
       enabled BIGINT NOT NULL, attrs TEXT NOT NULL, PRIMARY KEY (system, person_id))",
    "CREATE TABLE IF NOT EXISTS sandbox_memberships (system TEXT NOT NULL, person_id TEXT NOT NULL,
       entitlement TEXT NOT NULL, PRIMARY KEY (system, person_id, entitlement))",
    "CREATE TABLE IF NOT EXISTS sandbox_ops (system TEXT NOT NULL, op_id TEXT NOT NULL, PRIMARY KEY (system, op_id))",
    "CREATE TABLE IF NOT EXISTS sandbox_counters (system TEXT PRIMARY KEY, calls BIGINT NOT NULL,
       changes BIGINT NOT NULL, failures BIGINT NOT NULL)",
];

/// A sandbox system's settings (the `[systems.settings]` table).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Time each call takes.
    pub latency_ms: u64,
    /// Share of calls that fail (0.0 to 1.0): some before the system acts (retryable), the
    /// others (`timeout_share` of them) after it acted, with no answer (outcome unknown, like a
    /// timeout).
    pub failure_rate: f64,
    /// Share of the failures that come after the system acted, with no answer (0.0 to 1.0;
    /// half by default).
    pub timeout_share: f64,
    /// Seed for the failure draw, for reproducible runs.
    pub seed: Option<u64>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            latency_ms: 0,
            failure_rate: 0.0,
            timeout_share: 0.5,
            seed: None,
        }
    }
}

impl SandboxSettings {
    /// Reads settings from a system's settings map, naming the bad key on error.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s: SandboxSettings = serde_json::from_value(serde_json::Value::Object(map.clone()))
            .map_err(|e| e.to_string())?;
        for (key, share) in [
            ("failure_rate", s.failure_rate),
            ("timeout_share", s.timeout_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{key} must be between 0 and 1, not {share}"));
            }
        }
        Ok(s)
    }
}

/// Durable counters of one sandbox system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SandboxStats {
    /// Calls received (including repeats and injected failures).
    pub calls: i64,
    /// Calls that changed something.
    pub changes: i64,
    /// Injected failures.
    pub failures: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Enable,
    Disable,
    Delete,
    Grant,
    Revoke,
}

struct Call {
    system: Arc<str>,
    op_id: String,
    kind: Kind,
    person_id: String,
    attrs: String,
    entitlement: String,
    /// Injected failure after applying: the change is made, the caller hears an error.
    fail_after: bool,
    reply: oneshot::Sender<Result<(), ConnectorError>>,
}

/// The store behind every sandbox system; hands out one connector per system.
#[derive(Clone)]
pub struct SandboxHub {
    store: Store,
    /// Leavers' calls, batched and written apart from the rest (see [`writer`]).
    urgent: mpsc::Sender<Call>,
    normal: mpsc::Sender<Call>,
}

impl SandboxHub {
    /// Creates the sandbox tables and starts the writer.
    pub async fn start(store: Store) -> Result<SandboxHub, StoreError> {
        let mut t = store.begin().await?;
        // On SQLite each table is its primary key's B-tree alone (`WITHOUT ROWID`), not a
        // table beside an index of the same columns: one B-tree written per row, not two.
        // Tables made before stay as they are; they behave the same.
        let clustered = if store.backend() == tenure_store::Backend::Sqlite {
            " WITHOUT ROWID"
        } else {
            ""
        };
        for ddl in SCHEMA {
            t.conn()
                .execute(AssertSqlSafe(format!("{ddl}{clustered}")))
                .await?;
        }
        t.commit().await?;
        let (urgent, urgent_rx) = mpsc::channel(4096);
        let (normal, normal_rx) = mpsc::channel(4096);
        // Leavers' calls are written on the store's urgent thread when it has one.
        store.spawn(
            Priority::Urgent,
            writer(store.clone(), urgent_rx, Priority::Urgent),
        );
        tokio::spawn(writer(store.clone(), normal_rx, Priority::Normal));
        Ok(SandboxHub {
            store,
            urgent,
            normal,
        })
    }

    /// A connector for system `system` with these settings.
    pub fn connector(&self, system: &str, settings: SandboxSettings) -> SandboxConnector {
        let seed = settings
            .seed
            .unwrap_or_else(|| StdRng::from_os_rng().random());
        SandboxConnector {
            hub: self.clone(),
            system: system.into(),
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            settings,
        }
    }

    /// The durable counters of `system`.
    pub async fn stats(&self, system: &str) -> Result<SandboxStats, StoreError> {
        let mut c = self.store.reader().await?;
        let row =
            db::query("SELECT calls, changes, failures FROM sandbox_counters WHERE system = $1")
                .bind(system)
                .fetch_optional(&mut c)
                .await?;
        Ok(match row {
            Some(r) => SandboxStats {
                calls: r.try_get(0)?,
                changes: r.try_get(1)?,
                failures: r.try_get(2)?,
            },
            None => SandboxStats::default(),
        })
    }

    /// Whether this hub writes with SQLite locking.
    pub fn is_sqlite(&self) -> bool {
        self.store.backend() == tenure_store::Backend::Sqlite
    }
}

/// Applies the calls of one priority in batches, a transaction each. Urgent calls have a
/// writer of their own whose transactions take the store's writer first, as a system's own
/// storage would not make a leaver's call wait for a batch of hires queued before it.
async fn writer(store: Store, mut rx: mpsc::Receiver<Call>, priority: Priority) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        // Calls made at the same moment (a leave's, one per system) share the transaction:
        // those sent while this task was waking join the batch.
        tokio::task::yield_now().await;
        while batch.len() < 512
            && let Ok(call) = rx.try_recv()
        {
            batch.push(call);
        }
        let calls = std::mem::take(&mut batch);
        match apply_batch(&store, &calls, priority).await {
            Ok(results) => {
                for (call, result) in calls.into_iter().zip(results) {
                    let _ = call.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox batch failed; its calls are answered as retryable");
                for call in calls {
                    let _ = call.reply.send(Err(ConnectorError::retryable(format!(
                        "sandbox storage: {e}"
                    ))));
                }
            }
        }
    }
}

async fn apply_batch(
    store: &Store,
    calls: &[Call],
    priority: Priority,
) -> Result<Vec<Result<(), ConnectorError>>, StoreError> {
    let mut t = store.begin_with(priority).await?;
    let tx = t.conn();
    let sqlite = tx.is_sqlite();
    // Counters are written in system order: the two writers' transactions run side by side on
    // PostgreSQL, and rows locked in different orders would deadlock.
    let mut counters: BTreeMap<Arc<str>, SandboxStats> = BTreeMap::new();
    let mut results = Vec::with_capacity(calls.len());
    // One statement records every operation id of the batch; the ones already there are repeats.
    let mut fresh = std::collections::HashSet::new();
    for chunk in calls.chunks(1000) {
        let mut sql = String::from("INSERT INTO sandbox_ops (system, op_id) VALUES ");
        tenure_store::push_placeholders(&mut sql, chunk.len(), 2, sqlite);
        sql.push_str(" ON CONFLICT DO NOTHING RETURNING system, op_id");
        let mut q = db::query(AssertSqlSafe(sql));
        for call in chunk {
            q = q.bind(call.system.to_string()).bind(call.op_id.clone());
        }
        for row in q.fetch_all(&mut *tx).await? {
            fresh.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
        }
    }
    for call in calls {
        let count = counters.entry(call.system.clone()).or_default();
        count.calls += 1;
        let sys = call.system.to_string();
        if !fresh.remove(&(sys.clone(), call.op_id.clone())) {
            // A repeat of an operation already applied: answer as done, change nothing (unless
            // this call's answer is lost too).
            results.push(if call.fail_after {
                count.failures += 1;
                Err(ConnectorError::Unknown(format!(
                    "{}: timed out",
                    call.system
                )))
            } else {
                Ok(())
            });
            continue;
        }
        let person = call.person_id.clone();
        let affected = match call.kind {
            Kind::Create => db::query(
                "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING",
            )
            .bind(sys.clone())
            .bind(person.clone())
            .bind(call.attrs.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Kind::Update => db::query("UPDATE sandbox_accounts SET attrs = $3 WHERE system = $1 AND person_id = $2 AND attrs <> $3")
                .bind(sys.clone())
                .bind(person.clone())
                .bind(call.attrs.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Kind::Enable | Kind::Disable => {
                let want = (call.kind == Kind::Enable) as i64;
                db::query("UPDATE sandbox_accounts SET enabled = $3 WHERE system = $1 AND person_id = $2 AND enabled <> $3")
                    .bind(sys.clone())
                    .bind(person.clone())
                    .bind(want)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            Kind::Delete => {
                db::query("DELETE FROM sandbox_memberships WHERE system = $1 AND person_id = $2")
                    .bind(sys.clone())
                    .bind(person.clone())
                    .execute(&mut *tx)
                    .await?;
                db::query("DELETE FROM sandbox_accounts WHERE system = $1 AND person_id = $2")
                    .bind(sys.clone())
                    .bind(person.clone())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            Kind::Grant => db::query(
                "INSERT INTO sandbox_memberships (system, person_id, entitlement)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM sandbox_accounts WHERE system = $1 AND person_id = $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(sys.clone())
            .bind(person.clone())
            .bind(call.entitlement.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            Kind::Revoke => db::query("DELETE FROM sandbox_memberships WHERE system = $1 AND person_id = $2 AND entitlement = $3")
                .bind(sys.clone())
                .bind(person.clone())
                .bind(call.entitlement.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        let needs_account = matches!(call.kind, Kind::Update | Kind::Enable | Kind::Grant);
        if affected == 0 && needs_account {
            let exists =
                db::query("SELECT 1 FROM sandbox_accounts WHERE system = $1 AND person_id = $2")
                    .bind(sys.clone())
                    .bind(person.clone())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if !exists {
                // Like a real system's 404: nothing to act on. Forget the op so a retry after
                // the account appears is applied.
                db::query("DELETE FROM sandbox_ops WHERE system = $1 AND op_id = $2")
                    .bind(sys.clone())
                    .bind(call.op_id.clone())
                    .execute(&mut *tx)
                    .await?;
                results.push(Err(ConnectorError::Permanent(format!(
                    "{}: no account for `{}`",
                    call.system, person
                ))));
                continue;
            }
        }
        count.changes += affected.min(1) as i64;
        if call.fail_after {
            count.failures += 1;
            results.push(Err(ConnectorError::Unknown(format!(
                "{}: timed out",
                call.system
            ))));
        } else {
            results.push(Ok(()));
        }
    }
    // Every system's counters in one statement (a leave's phase touches four systems: one
    // round trip, not four), in system order.
    if !counters.is_empty() {
        let mut sql =
            String::from("INSERT INTO sandbox_counters (system, calls, changes, failures) VALUES ");
        tenure_store::push_placeholders(&mut sql, counters.len(), 4, sqlite);
        sql.push_str(
            " ON CONFLICT (system) DO UPDATE SET calls = sandbox_counters.calls + excluded.calls,
               changes = sandbox_counters.changes + excluded.changes,
               failures = sandbox_counters.failures + excluded.failures",
        );
        let mut q = db::query(AssertSqlSafe(sql));
        for (system, c) in counters {
            q = q
                .bind(system.to_string())
                .bind(c.calls)
                .bind(c.changes)
                .bind(c.failures);
        }
        q.execute(&mut *tx).await?;
    }
    t.commit().await?;
    Ok(results)
}

/// A connector for one sandbox system.
#[derive(Clone)]
pub struct SandboxConnector {
    hub: SandboxHub,
    system: Arc<str>,
    rng: Arc<Mutex<StdRng>>,
    settings: SandboxSettings,
}

impl SandboxConnector {
    async fn call(
        &self,
        op: &Op,
        kind: Kind,
        person: &Person,
        entitlement: Option<&Entitlement>,
    ) -> Result<(), ConnectorError> {
        if self.settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.settings.latency_ms)).await;
        }
        let (fail_before, fail_after) = {
            let mut rng = self.rng.lock().expect("sandbox rng lock");
            let fail =
                self.settings.failure_rate > 0.0 && rng.random_bool(self.settings.failure_rate);
            let after = fail && rng.random_bool(self.settings.timeout_share);
            (fail && !after, after)
        };
        if fail_before {
            self.count_failure().await;
            return Err(ConnectorError::retryable(format!(
                "{}: service unavailable (injected)",
                self.system
            )));
        }
        let (reply, answer) = oneshot::channel();
        let attrs = serde_json::json!({"name": person.name, "email": person.email, "title": person.title, "department": person.department}).to_string();
        let call = Call {
            system: self.system.clone(),
            op_id: op.id.clone(),
            kind,
            person_id: person.id.clone(),
            attrs,
            entitlement: entitlement.map(|e| e.name.clone()).unwrap_or_default(),
            fail_after,
            reply,
        };
        let lane = match op.priority {
            Priority::Urgent => &self.hub.urgent,
            Priority::Normal => &self.hub.normal,
        };
        lane.send(call)
            .await
            .map_err(|_| ConnectorError::retryable("sandbox writer stopped"))?;
        answer
            .await
            .map_err(|_| ConnectorError::retryable("sandbox writer stopped"))?
    }

    /// A connection to read the sandbox's tables with.
    async fn reader(&self) -> Result<tenure_store::Reader, ConnectorError> {
        self.hub
            .store
            .reader()
            .await
            .map_err(|e| ConnectorError::retryable(e.to_string()))
    }

    async fn count_failure(&self) {
        let store = &self.hub.store;
        let counted = async {
            let mut t = store.begin().await?;
            db::query(
                "INSERT INTO sandbox_counters (system, calls, changes, failures) VALUES ($1, 1, 0, 1)
                 ON CONFLICT (system) DO UPDATE SET calls = sandbox_counters.calls + 1, failures = sandbox_counters.failures + 1",
            )
            .bind(self.system.to_string())
            .execute(t.conn())
            .await?;
            t.commit().await
        };
        let _ = counted
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "sandbox failure counter not stored"));
    }
}

/// The sandbox's accounts in person id order, `page_size` at a time: one range scan of the
/// accounts after the last key seen, one of the memberships of exactly those accounts.
struct SandboxPages<'a> {
    connector: &'a SandboxConnector,
    page_size: usize,
    /// The last key of the previous page; `None` before the first.
    after: Option<String>,
    done: bool,
}

fn read_error(e: StoreError) -> ConnectorError {
    ConnectorError::retryable(format!("sandbox storage: {e}"))
}

/// What of the stored `attrs` (`{"name", "email", "title", "department"}`) correlation can
/// match on: the email address (the sandbox keeps no sign-in name).
fn sandbox_attributes(attrs: &str) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        email: Option<String>,
    }
    let mut out = BTreeMap::new();
    if let Ok(Stored { email: Some(email) }) = serde_json::from_str(attrs)
        && !email.is_empty()
    {
        out.insert(attribute::EMAIL.to_string(), email);
    }
    out
}

#[async_trait]
impl InventoryPages for SandboxPages<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<InventoryAccount>>, ConnectorError> {
        if self.done {
            return Ok(None);
        }
        let system = self.connector.system.to_string();
        // `>= ''` takes every key, the empty one too, on the first page.
        let (cmp, after) = match &self.after {
            Some(a) => (">", a.clone()),
            None => (">=", String::new()),
        };
        let mut c = self.connector.reader().await?;
        let rows = db::query(AssertSqlSafe(format!(
            "SELECT person_id, enabled, attrs FROM sandbox_accounts
              WHERE system = $1 AND person_id {cmp} $2 ORDER BY person_id LIMIT $3"
        )))
        .bind(system.clone())
        .bind(after.clone())
        .bind(i64::try_from(self.page_size).unwrap_or(i64::MAX))
        .fetch_all(&mut c)
        .await
        .map_err(read_error)?;
        if rows.len() < self.page_size {
            self.done = true;
        }
        let mut page = Vec::with_capacity(rows.len());
        for r in &rows {
            let key: String = r.try_get(0).map_err(read_error)?;
            page.push(InventoryAccount {
                person_id: Some(key.clone()),
                key,
                enabled: r.try_get::<i64, _>(1).map_err(read_error)? != 0,
                attributes: sandbox_attributes(&r.try_get::<String, _>(2).map_err(read_error)?),
                memberships: Vec::new(),
            });
        }
        let Some(last) = page.last().map(|a| a.key.clone()) else {
            self.done = true;
            return Ok(None);
        };
        // The memberships of exactly this page's accounts: one range scan of the primary key,
        // one row (a JSON array of entitlement names) per account that holds any. Sorted here:
        // an ordered aggregate costs PostgreSQL a sort per account.
        let held = if c.is_sqlite() {
            "json_group_array(entitlement)"
        } else {
            "json_agg(entitlement)::text"
        };
        let rows = db::query(AssertSqlSafe(format!(
            "SELECT person_id, {held} FROM sandbox_memberships
              WHERE system = $1 AND person_id {cmp} $2 AND person_id <= $3
              GROUP BY person_id ORDER BY person_id"
        )))
        .bind(system)
        .bind(after)
        .bind(last.clone())
        .fetch_all(&mut c)
        .await
        .map_err(read_error)?;
        // Both lists come in the database's order of person ids: walk them together.
        let mut i = 0;
        for r in &rows {
            let person: String = r.try_get(0).map_err(read_error)?;
            if page[i].key != person {
                i = match page[i..].iter().position(|a| a.key == person) {
                    Some(n) => i + n,
                    // Not in the order expected (cannot happen): look it up.
                    None => match page.iter().position(|a| a.key == person) {
                        Some(n) => n,
                        None => continue,
                    },
                };
            }
            let held: String = r.try_get(1).map_err(read_error)?;
            let mut held: Vec<String> = serde_json::from_str(&held).map_err(|e| {
                ConnectorError::Permanent(format!(
                    "sandbox storage: memberships of `{person}`: {e}"
                ))
            })?;
            held.sort_unstable();
            page[i].memberships = held;
        }
        self.after = Some(last);
        Ok(Some(page))
    }
}

#[async_trait]
impl Connector for SandboxConnector {
    async fn create_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.call(op, Kind::Create, person, None).await
    }
    async fn update_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.call(op, Kind::Update, person, None).await
    }
    async fn enable_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.call(op, Kind::Enable, person, None).await
    }
    async fn disable_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.call(op, Kind::Disable, person, None).await
    }
    async fn delete_account(&self, op: &Op, person: &Person) -> Result<(), ConnectorError> {
        self.call(op, Kind::Delete, person, None).await
    }
    async fn grant(
        &self,
        op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        self.call(op, Kind::Grant, person, Some(entitlement)).await
    }
    async fn revoke(
        &self,
        op: &Op,
        person: &Person,
        entitlement: &Entitlement,
    ) -> Result<(), ConnectorError> {
        self.call(op, Kind::Revoke, person, Some(entitlement)).await
    }
    async fn list_accounts(&self) -> Result<Vec<RemoteAccount>, ConnectorError> {
        let mut c = self.reader().await?;
        let rows = db::query(
            "SELECT person_id, enabled FROM sandbox_accounts WHERE system = $1 ORDER BY person_id",
        )
        .bind(self.system.to_string())
        .fetch_all(&mut c)
        .await
        .map_err(|e| ConnectorError::retryable(e.to_string()))?;
        rows.iter()
            .map(|r| {
                Ok(RemoteAccount {
                    person_id: r
                        .try_get(0)
                        .map_err(|e| ConnectorError::retryable(e.to_string()))?,
                    enabled: r
                        .try_get::<i64, _>(1)
                        .map_err(|e| ConnectorError::retryable(e.to_string()))?
                        != 0,
                })
            })
            .collect()
    }
    async fn list_memberships(&self, person_id: &str) -> Result<Vec<String>, ConnectorError> {
        let mut c = self.reader().await?;
        let rows = db::query(
            "SELECT entitlement FROM sandbox_memberships WHERE system = $1 AND person_id = $2 ORDER BY entitlement",
        )
        .bind(self.system.to_string())
        .bind(person_id.to_string())
        .fetch_all(&mut c)
        .await
        .map_err(|e| ConnectorError::retryable(e.to_string()))?;
        rows.iter()
            .map(|r| {
                r.try_get(0)
                    .map_err(|e| ConnectorError::retryable(e.to_string()))
            })
            .collect()
    }
    fn account_key(&self, person_id: &str) -> Option<String> {
        Some(person_id.to_string())
    }
    fn subject_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        Some(key)
    }
    async fn inventory(&self, page_size: usize) -> Result<Inventory<'_>, ConnectorError> {
        Ok(Inventory::Pages(Box::new(SandboxPages {
            connector: self,
            page_size: page_size.max(1),
            after: None,
            done: false,
        })))
    }
    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn stats(&self) -> Option<serde_json::Value> {
        match self.hub.stats(&self.system).await {
            Ok(s) => serde_json::to_value(s).ok(),
            Err(e) => Some(serde_json::json!({"error": e.to_string()})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<SandboxSettings, String> {
        SandboxSettings::from_map(json.as_object().unwrap())
    }

    /// Half of the failures come after the change by default; a share outside 0 to 1, or a
    /// key the sandbox does not know, is refused by name.
    #[test]
    fn failure_shares_are_read_and_checked() {
        let s = settings(serde_json::json!({"failure_rate": 0.35})).unwrap();
        assert_eq!((s.failure_rate, s.timeout_share), (0.35, 0.5));
        let s = settings(serde_json::json!({"failure_rate": 0.35, "timeout_share": 0.25})).unwrap();
        assert_eq!(s.timeout_share, 0.25);
        let e = settings(serde_json::json!({"timeout_share": 1.5})).unwrap_err();
        assert!(e.contains("timeout_share"), "{e}");
        let e = settings(serde_json::json!({"failure_rate": -0.1})).unwrap_err();
        assert!(e.contains("failure_rate"), "{e}");
        let e = settings(serde_json::json!({"timeout_rate": 0.1})).unwrap_err();
        assert!(e.contains("timeout_rate"), "{e}");
    }

    /// A store of the test's own: SQLite, or a scratch database on the PostgreSQL server
    /// `TENURE_TEST_DATABASE_URL` names.
    async fn store(dir: &tempfile::TempDir) -> Store {
        match std::env::var("TENURE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let name = format!("tenure_sandbox_{}", uuid::Uuid::new_v4().simple());
                let url = tenure_store::create_scratch_database(&url, &name)
                    .await
                    .unwrap();
                Store::connect(&url).await.unwrap()
            }
            _ => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
        }
    }

    fn person(id: &str) -> Person {
        Person::new(id, format!("Person {id}"), format!("{id}@example.com"))
    }

    fn entitlement(id: &str, name: &str) -> Entitlement {
        Entitlement {
            id: id.into(),
            system: "crm".into(),
            kind: "group".into(),
            name: name.into(),
            risk: tenure_core::Risk::Low,
            owner: None,
            client: None,
        }
    }

    fn op(id: &str) -> Op {
        Op {
            id: id.into(),
            attempt: 1,
            priority: tenure_core::run::Priority::Normal,
        }
    }

    async fn pages(c: &SandboxConnector, page_size: usize) -> Vec<Vec<InventoryAccount>> {
        let Inventory::Pages(mut pages) = c.inventory(page_size).await.unwrap() else {
            panic!("the sandbox lists its accounts");
        };
        let mut out = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            assert!(!page.is_empty() && page.len() <= page_size);
            out.push(page);
        }
        assert_eq!(pages.next_page().await.unwrap(), None, "done stays done");
        out
    }

    /// Pages come in person id order with exactly their accounts' memberships (by entitlement
    /// name, as granted), the email the account was made with, and disabled accounts as such;
    /// another sandbox system's accounts never show.
    #[tokio::test]
    async fn inventory_pages_through_accounts_with_their_memberships() {
        let dir = tempfile::tempdir().unwrap();
        let hub = SandboxHub::start(store(&dir).await).await.unwrap();
        let c = hub.connector("crm", SandboxSettings::default());
        let other = hub.connector("erp", SandboxSettings::default());
        let admin = entitlement("crm:admin", "Administrators");
        let read = entitlement("crm:read", "Readers");
        for id in ["p5", "p1", "p3", "p2", "p4"] {
            c.create_account(&op(&format!("c-{id}")), &person(id))
                .await
                .unwrap();
        }
        c.grant(&op("g1"), &person("p1"), &admin).await.unwrap();
        c.grant(&op("g2"), &person("p1"), &read).await.unwrap();
        c.grant(&op("g3"), &person("p2"), &read).await.unwrap();
        c.grant(&op("g4"), &person("p5"), &admin).await.unwrap();
        c.disable_account(&op("d2"), &person("p2")).await.unwrap();
        // Another system: an account and a membership in key ranges of crm's pages.
        other
            .create_account(&op("o1"), &person("p2"))
            .await
            .unwrap();
        other
            .create_account(&op("o2"), &person("p4a"))
            .await
            .unwrap();
        other
            .grant(&op("o3"), &person("p4a"), &admin)
            .await
            .unwrap();

        let got = pages(&c, 2).await;
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let expect = |id: &str, enabled: bool, memberships: &[&str]| InventoryAccount {
            key: id.into(),
            person_id: Some(id.into()),
            enabled,
            attributes: [("email".to_string(), format!("{id}@example.com"))].into(),
            memberships: memberships.iter().map(|m| m.to_string()).collect(),
        };
        assert_eq!(
            got.into_iter().flatten().collect::<Vec<_>>(),
            vec![
                expect("p1", true, &["Administrators", "Readers"]),
                expect("p2", false, &["Readers"]),
                expect("p3", true, &[]),
                expect("p4", true, &[]),
                expect("p5", true, &["Administrators"]),
            ]
        );
        // A page size that divides the count: the last full page is followed by none.
        let sizes: Vec<usize> = pages(&c, 5).await.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5]);
        let empty = hub.connector("none", SandboxSettings::default());
        assert!(pages(&empty, 3).await.is_empty());
    }
}
