//! `manual`: for systems with no API. Each step becomes a task for a named team ("create the
//! client VPN account for Ada"), stored in tenure's database and keyed by the step's operation
//! id. The step waits (without spending attempts, and with no lease to run out) until a person
//! completes or fails the task through the API or the CLI; the step is then called again and
//! answers from the task: done is success, failed is a permanent failure with the person's
//! reason. A restart loses nothing: the task and the waiting step are both rows.

use crate::settings;
use crate::template::{self, Context};
use crate::{ConnectorError, Op};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tenure_core::planner::Action;
use tenure_core::{Entitlement, Person};
use tenure_store::{NewAudit, NewTask, Store, TaskKind, TaskRow, TaskState};

/// The current time in epoch milliseconds (the engine's clock).
pub type NowFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A `manual` system's settings (the `[systems.settings]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualSettings {
    /// The team whose queue the tasks go to.
    pub team: String,
    /// How long a task may stay open before it counts as overdue.
    #[serde(default = "default_sla")]
    pub sla_minutes: u64,
    /// How often a waiting step looks at its task even if no completion was announced
    /// (another instance finished it, say).
    #[serde(default = "default_recheck")]
    pub recheck_ms: u64,
    /// Task titles per action (`create_account`, `grant`, ...), as templates.
    #[serde(default)]
    pub titles: BTreeMap<String, String>,
}

fn default_sla() -> u64 {
    24 * 60
}
fn default_recheck() -> u64 {
    60_000
}

impl ManualSettings {
    /// Reads and checks settings from a system's settings map.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s: ManualSettings = settings::parse(map)?;
        if s.team.trim().is_empty() {
            return Err("team must not be empty".into());
        }
        if s.recheck_ms == 0 {
            return Err("recheck_ms must be at least 1".into());
        }
        for (action, title) in &s.titles {
            let a: Action = action
                .parse()
                .map_err(|e| format!("titles.{action}: {e}"))?;
            template::check(title, matches!(a, Action::Grant | Action::Revoke))
                .map_err(|e| format!("titles.{action}: {e}"))?;
        }
        Ok(s)
    }
}

fn default_title(action: Action) -> &'static str {
    match action {
        Action::CreateAccount => {
            "Create the {{system}} account of {{person.name}} ({{person.email}})"
        }
        Action::UpdateAccount => {
            "Update the {{system}} account of {{person.name}}: title {{person.title}}, department {{person.department}}, location {{person.location}}"
        }
        Action::EnableAccount => {
            "Enable the {{system}} account of {{person.name}} ({{person.email}})"
        }
        Action::DisableAccount => {
            "Disable the {{system}} account of {{person.name}} ({{person.email}})"
        }
        Action::DeleteAccount => {
            "Delete the {{system}} account of {{person.name}} ({{person.email}})"
        }
        Action::Grant => {
            "Give {{person.name}} ({{person.email}}) {{entitlement.name}} on {{system}}"
        }
        Action::Revoke => {
            "Take {{entitlement.name}} on {{system}} away from {{person.name}} ({{person.email}})"
        }
    }
}

/// Turns steps into tasks for a team.
pub struct ManualConnector {
    store: Store,
    system: String,
    settings: ManualSettings,
    now: NowFn,
}

fn store_error(e: tenure_store::StoreError) -> ConnectorError {
    ConnectorError::retryable(format!("task store: {e}"))
}

/// Answers a step from its task's state.
pub(crate) fn answer(task: &TaskRow, recheck_ms: u64) -> Result<(), ConnectorError> {
    match task.state {
        TaskState::Done => Ok(()),
        TaskState::Failed => Err(ConnectorError::Permanent(format!(
            "task {} failed{}: {}",
            task.id,
            task.finished_by
                .as_deref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default(),
            task.message.as_deref().unwrap_or("no reason given")
        ))),
        TaskState::Cancelled => Err(ConnectorError::Permanent(format!(
            "task {} was withdrawn: its step was cancelled",
            task.id
        ))),
        TaskState::Open => Err(ConnectorError::Waiting {
            message: match &task.team {
                Some(team) => format!("task {} open for team {team}", task.id),
                None => format!("waiting for the completion callback of {}", task.id),
            },
            recheck_after_ms: recheck_ms,
        }),
    }
}

/// Finds the task of `t.id`, or opens it (audited as `task.opened`).
pub(crate) async fn find_or_open(store: &Store, t: NewTask) -> Result<TaskRow, ConnectorError> {
    let mut c = store.reader().await.map_err(store_error)?;
    if let Some(task) = tenure_store::get_task(&mut c, &t.id)
        .await
        .map_err(store_error)?
    {
        return Ok(task);
    }
    drop(c);
    let mut tx = store.begin().await.map_err(store_error)?;
    let (task, opened) = tenure_store::open_task(tx.conn(), &t)
        .await
        .map_err(store_error)?;
    if opened {
        tx.audit(NewAudit {
            at_ms: t.created_at,
            actor: "engine".into(),
            action: "task.opened".into(),
            person_id: Some(t.person_id.clone()),
            entitlement: t.entitlement.clone(),
            system: Some(t.system.clone()),
            reason: t.title.clone(),
            correlation_id: Some(t.id.clone()),
            details: serde_json::json!({ "kind": t.kind, "team": t.team, "due_at": t.due_at }),
            ..Default::default()
        });
    }
    tx.commit().await.map_err(store_error)?;
    Ok(task)
}

impl ManualConnector {
    /// A connector for system `system`.
    pub fn new(store: Store, system: &str, settings: ManualSettings, now: NowFn) -> Self {
        ManualConnector {
            store,
            system: system.into(),
            settings,
            now,
        }
    }

    async fn task(
        &self,
        op: &Op,
        action: Action,
        person: &Person,
        entitlement: Option<&Entitlement>,
    ) -> Result<(), ConnectorError> {
        let ctx = Context {
            system: &self.system,
            action,
            op,
            person,
            entitlement,
        };
        let title = self
            .settings
            .titles
            .get(action.as_str())
            .map(String::as_str)
            .unwrap_or(default_title(action));
        let now = (self.now)();
        let task = find_or_open(
            &self.store,
            NewTask {
                id: op.id.clone(),
                kind: TaskKind::Manual,
                system: self.system.clone(),
                team: Some(self.settings.team.clone()),
                person_id: person.id.clone(),
                action: action.to_string(),
                entitlement: entitlement.map(|e| e.id.clone()),
                title: template::render(title, &ctx, str::to_string),
                created_at: now,
                due_at: Some(now + (self.settings.sla_minutes * 60_000) as i64),
            },
        )
        .await?;
        answer(&task, self.settings.recheck_ms)
    }
}

crate::connector_by_action!(ManualConnector, task, "manual", {
    async fn health(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn stats(&self) -> Option<serde_json::Value> {
        let mut c = self.store.reader().await.ok()?;
        let open = tenure_store::list_tasks(
            &mut c,
            Some(TaskState::Open),
            Some(&self.settings.team),
            10_000,
        )
        .await
        .ok()?;
        let now = (self.now)();
        let open: Vec<_> = open
            .into_iter()
            .filter(|t| t.system == self.system)
            .collect();
        let overdue = open.iter().filter(|t| t.is_overdue(now)).count();
        Some(serde_json::json!({ "open_tasks": open.len(), "overdue_tasks": overdue }))
    }
});
