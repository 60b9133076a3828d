//! Reads the runs of a period for the service-level report (see `tenure_core::sla`): hires,
//! rehires and leaves received in it, a page at a time with their steps.

use crate::Result;
use crate::db::{self, Conn};
use crate::queries::{parse, push_placeholders};
use std::collections::HashMap;
use tenure_core::config::SlaSettings;
use tenure_core::run::RunKind;
use tenure_core::sla::{Collector, Direction, RunTiming, SlaReport, StepTiming};

/// Runs read per page.
const PAGE: i64 = 500;

/// The service-level report of the hires, rehires and leaves received from `from` until `to`
/// (epoch ms), against `sla`, judged at `now`. Reads the runs page by page: memory holds one
/// page and one duration per run and system.
pub async fn sla_report(
    c: &mut Conn,
    sla: &SlaSettings,
    from: i64,
    to: i64,
    now: i64,
) -> Result<SlaReport> {
    let mut collector = Collector::new(sla, from, to, now);
    for kind in Direction::ALL.iter().flat_map(|d| d.kinds()) {
        let mut after: Option<(i64, String)> = None;
        loop {
            let (at, id) = after.clone().unwrap_or((from - 1, String::new()));
            let rows = db::query(
                "SELECT id, person_id, kind, state, created_at, effective_at FROM runs
                 WHERE kind = $1 AND created_at >= $2 AND created_at < $3
                   AND (created_at > $4 OR (created_at = $4 AND id > $5))
                 ORDER BY created_at, id LIMIT $6",
            )
            .bind(kind.as_str())
            .bind(from)
            .bind(to)
            .bind(at)
            .bind(id)
            .bind(PAGE)
            .fetch_all(&mut *c)
            .await?;
            let mut runs = Vec::with_capacity(rows.len());
            for r in &rows {
                let created: i64 = r.try_get(4)?;
                let effective: i64 = r.try_get(5)?;
                runs.push(RunTiming {
                    run_id: r.try_get(0)?,
                    person_id: r.try_get(1)?,
                    kind: parse(&r.try_get::<String, _>(2)?)?,
                    state: parse(&r.try_get::<String, _>(3)?)?,
                    due_at: created.max(effective),
                    steps: Vec::new(),
                });
            }
            let Some(last) = rows.last() else {
                break;
            };
            after = Some((last.try_get(4)?, last.try_get(0)?));
            let mut index: HashMap<String, usize> = HashMap::with_capacity(runs.len());
            for (i, r) in runs.iter().enumerate() {
                index.insert(r.run_id.clone(), i);
            }
            let mut sql = String::from(
                "SELECT run_id, system, action, state, finished_at, attempts, last_error FROM steps
                 WHERE run_id IN ",
            );
            push_placeholders(&mut sql, 1, runs.len(), c.is_sqlite());
            let mut q = db::query(db::AssertSqlSafe(sql));
            for r in &runs {
                q = q.bind(r.run_id.clone());
            }
            for s in q.fetch_all(&mut *c).await? {
                let run_id: String = s.try_get(0)?;
                let Some(&i) = index.get(&run_id) else {
                    continue;
                };
                runs[i].steps.push(StepTiming {
                    system: s.try_get(1)?,
                    action: parse(&s.try_get::<String, _>(2)?)?,
                    state: parse(&s.try_get::<String, _>(3)?)?,
                    finished_at: s.try_get(4)?,
                    attempts: s.try_get(5)?,
                    last_error: s.try_get(6)?,
                });
            }
            for r in &runs {
                collector.add(r);
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
    }
    Ok(collector.finish())
}

/// How many runs of `kinds` have not ended though their access was due before `due_before`
/// (the later of receipt and effect): with `due_before` = now minus a target, the runs past it.
pub async fn overdue_runs(c: &mut Conn, kinds: &[RunKind], due_before: i64) -> Result<i64> {
    let mut sql = String::from(
        "SELECT COUNT(*) FROM runs WHERE state IN ('pending', 'running', 'awaiting_approval')
         AND created_at < $1 AND effective_at < $1 AND kind IN ",
    );
    // `$1` is the first parameter; the kinds follow it.
    sql.push('(');
    for i in 0..kinds.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 2));
    }
    sql.push(')');
    let mut q = db::query(db::AssertSqlSafe(sql)).bind(due_before);
    for k in kinds {
        q = q.bind(k.as_str());
    }
    q.fetch_one(&mut *c).await?.try_get(0)
}
