//! Access requests, approvals and delegations: who may ask, who may decide.
//!
//! A token acts as a person (`tenure token create --as PERSON`): that person is the requester
//! or the approver. An `admin` token without a person may ask on anyone's behalf and sees every
//! pending approval, but only people decide approvals.

use crate::auth::{Principal, Scope};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tenure_core::approval::Verdict;
use tenure_engine::NewRequest;

/// The longest justification or comment accepted.
const MAX_TEXT: usize = 2_000;

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if v.len() > MAX_TEXT {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_TEXT} bytes"),
        ));
    }
    Ok(v.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    /// Who would hold the access; the token's own person when absent.
    #[serde(default)]
    person_id: Option<String>,
    entitlement: String,
    justification: String,
    #[serde(default)]
    duration_secs: Option<i64>,
    #[serde(default)]
    break_glass: bool,
}

pub(crate) async fn post_request(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RequestBody = parse_body(&body)?;
    p.require(if req.break_glass {
        Scope::BreakGlass
    } else {
        Scope::Request
    })?;
    let justification = text("justification", &req.justification)?;
    let requester = match (&p.person_id, p.is_admin()) {
        (Some(person), _) => person.clone(),
        (None, true) => p.name.clone(),
        (None, false) => p.person()?.to_string(),
    };
    let beneficiary = match (&req.person_id, &p.person_id) {
        (Some(b), _) => b.clone(),
        (None, Some(me)) => me.clone(),
        (None, None) => return Err(ApiError::invalid("person_id", "say whose access this is")),
    };
    if p.person_id.as_deref() != Some(beneficiary.as_str()) && !p.is_admin() {
        // Someone else's access: only their manager may ask for it.
        let mut c = s.store().reader().await?;
        let manager = tenure_store::get_person(&mut c, &beneficiary)
            .await?
            .and_then(|b| b.manager);
        if manager.as_deref() != Some(requester.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "`{requester}` may ask for their own access or their reports', not `{beneficiary}`'s"
                ),
            ));
        }
    }
    let duration_ms = match req.duration_secs {
        Some(d) if d <= 0 || d > 366 * 86_400 => {
            return Err(ApiError::invalid(
                "duration_secs",
                "must be between 1 second and a year",
            ));
        }
        Some(d) => Some(d * 1000),
        None => None,
    };
    let accepted = s
        .engine()
        .request_access(NewRequest {
            person_id: beneficiary,
            entitlement: req.entitlement,
            requester,
            justification,
            duration_ms,
            break_glass: req.break_glass,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(accepted))).into_response())
}

pub(crate) async fn get_request(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let request = s.engine().request(&id).await?;
    let own = p
        .person_id
        .as_deref()
        .is_some_and(|me| me == request.requester || me == request.person_id);
    if !own {
        p.require(Scope::Read)?;
    }
    let mut c = s.store().reader().await?;
    let approvals = tenure_store::list_approvals(&mut c, false, Some(&request.run_id), 100).await?;
    Ok(Json(json!({ "request": request, "approvals": approvals })))
}

pub(crate) async fn list_approvals(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Approve)?;
    let person = match (&p.person_id, p.is_admin()) {
        (Some(me), _) => Some(me.as_str()),
        (None, true) => None,
        (None, false) => Some(p.person()?),
    };
    let items = s.engine().pending_approvals(person).await?;
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn get_approval(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if p.require(Scope::Approve).is_err() {
        p.require(Scope::Read)?;
    }
    Ok(Json(json!(s.engine().approval(&id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verdict,
    comment: String,
}

pub(crate) async fn post_decision(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Approve)?;
    let actor = p.person()?.to_string();
    let d: DecisionBody = parse_body(&body)?;
    let comment = text("comment", &d.comment)?;
    let detail = s
        .engine()
        .decide_approval(&id, &actor, d.decision, &comment)
        .await?;
    Ok(Json(json!(detail)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegationBody {
    /// The approver who is away; the token's person when absent (admins may name anyone).
    #[serde(default)]
    delegator: Option<String>,
    delegate: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

pub(crate) async fn post_delegation(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Approve)?;
    let d: DelegationBody = parse_body(&body)?;
    let delegator = match (&d.delegator, &p.person_id) {
        (Some(other), me) if me.as_deref() != Some(other.as_str()) => {
            p.require(Scope::Admin)?;
            other.clone()
        }
        (Some(me), _) => me.clone(),
        (None, _) => p.person()?.to_string(),
    };
    let row = s
        .engine()
        .delegate(
            &delegator,
            &d.delegate,
            d.starts_at.timestamp_millis(),
            d.ends_at.timestamp_millis(),
            &p.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(row))).into_response())
}
