//! Bearer tokens: random secrets shown once, stored as SHA-256 hashes, each with scopes.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use tenure_core::PersonStatus;
pub use tenure_core::Scope;

/// A fresh token secret: `tnr_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source works");
    format!("tnr_{}", hex::encode(bytes))
}

/// A new token's row: a fresh id, `scopes` as stored, made at `now`, acting as `person_id`.
pub(crate) fn token_row(
    name: &str,
    scopes: &[Scope],
    person_id: Option<&str>,
    now: i64,
) -> tenure_store::TokenRow {
    tenure_store::TokenRow {
        // The whole UUID: its first 20 digits are the same for every id made within one
        // millisecond (the time and the top of a counter that counts up by one).
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_string(),
        scopes: scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        created_at: now,
        revoked_at: None,
        person_id: person_id.map(str::to_string),
    }
}

/// What is stored of a token: the SHA-256 of its secret. Secrets are long and random, so a
/// fast hash is enough; a slow password hash would only slow every request.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id.
    pub token_id: String,
    /// Token name: the actor in the audit trail.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The person it acts as (`tenure token create --as PERSON`).
    pub person_id: Option<String>,
}

impl Principal {
    /// Whether the token holds `admin`.
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// The person the token acts as, or 403 naming what is missing.
    pub fn person(&self) -> Result<&str, ApiError> {
        self.person_id.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token acts as no person: create it with `tenure token create --as PERSON`",
            )
        })
    }

    /// Refuses with 403 unless the token holds one of `scopes` (or `admin`).
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.require(*s).is_ok()) {
            return Ok(());
        }
        let names: Vec<String> = scopes.iter().map(|s| format!("`{s}`")).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the {} scope", names.join(" or ")),
        ))
    }

    /// Refuses with 403 unless the token holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token lacks the `{scope}` scope"),
            ))
        }
    }
}

/// How long a verified token is believed without asking the database again (ms). A revocation
/// through this server's API empties the cache at once; one made elsewhere (the CLI, another
/// instance on the same PostgreSQL database) takes effect here within this bound.
pub const TOKEN_CACHE_MS: i64 = 1_000;

/// Tokens verified in the last [`TOKEN_CACHE_MS`], by the hash of their secret, so that a
/// burst of requests costs one token lookup instead of one each. Only live tokens found in the
/// database that act as no person are kept (an unknown secret is never cached, and a token
/// acting as a person is checked against that person on every request), so the cache holds at
/// most the live tokens used within the bound.
#[derive(Default)]
pub(crate) struct TokenCache {
    map: Mutex<HashMap<String, (Principal, i64)>>,
}

impl TokenCache {
    /// The principal of `hash` if it was verified in `[now - TOKEN_CACHE_MS, now]`.
    fn get(&self, hash: &str, now: i64) -> Option<Principal> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (p, at) = map.get(hash)?;
        (*at <= now && now - *at < TOKEN_CACHE_MS).then(|| p.clone())
    }

    /// Remembers that `hash` was verified as `p` at `now`, and forgets entries past the bound.
    fn put(&self, hash: String, p: Principal, now: i64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 64 {
            map.retain(|_, (_, at)| *at <= now && now - *at < TOKEN_CACHE_MS);
        }
        map.insert(hash, (p, now));
    }

    /// Forgets every token: after a revocation.
    pub(crate) fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
            })?;
        let value = header
            .to_str()
            .map_err(|_| unauthorized("malformed Authorization header"))?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?
            .trim();
        let hash = hash_token(secret);
        let now = state.engine().clock().now_ms();
        if let Some(p) = state.tokens().get(&hash, now) {
            return Ok(p);
        }
        let mut c = state.store().reader().await?;
        let Some(token) = tenure_store::token_by_hash(&mut c, &hash).await? else {
            return Err(
                match tenure_store::revoked_token_by_hash(&mut c, &hash).await? {
                    Some(t) => unauthorized(&revoked_message(&mut c, &t).await?),
                    None => unauthorized("unknown or revoked token"),
                },
            );
        };
        let p = principal_of(&mut c, token).await?;
        drop(c);
        if p.person_id.is_none() {
            state.tokens().put(hash, p.clone(), now);
        }
        Ok(p)
    }
}

/// The principal of a live token, checked as on every request: a token that acts as a person
/// works only while that person works here (checked each time, never cached, so a leave stops
/// it at once; the leave also revokes it, so a rehire does not bring it back).
pub(crate) async fn principal_of(
    c: &mut tenure_store::Conn,
    token: tenure_store::TokenRow,
) -> Result<Principal, ApiError> {
    if let Some(person) = &token.person_id {
        let status = tenure_store::get_person(c, person).await?.map(|p| p.status);
        if !status.is_some_and(PersonStatus::is_working) {
            let why = match status {
                Some(PersonStatus::PreHire) => "has not started yet",
                Some(_) => "has left",
                None => "is not known",
            };
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token `{}` acts as `{person}`, who {why}: a token that acts as a person works only while they work here",
                    token.name
                ),
            ));
        }
    }
    let scopes = token
        .scopes
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    Ok(Principal {
        token_id: token.id,
        name: token.name,
        scopes,
        person_id: token.person_id,
    })
}

/// Why a revoked token no longer works, for its holder: revoked, and when its person left, that.
async fn revoked_message(
    c: &mut tenure_store::Conn,
    t: &tenure_store::TokenRow,
) -> Result<String, ApiError> {
    let when = t
        .revoked_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|at| {
            format!(
                " at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    let left = match &t.person_id {
        Some(p) => tenure_store::get_person(c, p)
            .await?
            .is_some_and(|p| !p.status.is_working()),
        None => false,
    };
    Ok(match (&t.person_id, left) {
        (Some(p), true) => format!(
            "token `{}` was revoked{when}: it acted as `{p}`, who has left; tokens that act as a person stop working when they leave",
            t.name
        ),
        (Some(p), false) => format!(
            "token `{}` was revoked{when}; `{p}` needs a new token (one made before a leave stays revoked after a rehire)",
            t.name
        ),
        (None, _) => format!("token `{}` was revoked{when}", t.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn token_ids_made_in_the_same_millisecond_differ() {
        let ids: std::collections::HashSet<String> = (0..1_000)
            .map(|_| token_row("t", &[Scope::Read], None, 0).id)
            .collect();
        assert_eq!(ids.len(), 1_000);
    }

    #[test]
    fn cached_tokens_last_the_bound_and_go_on_clear() {
        let cache = TokenCache::default();
        let p = Principal {
            token_id: "t".into(),
            name: "n".into(),
            scopes: vec![Scope::Scim],
            person_id: None,
        };
        assert!(cache.get("h", 1_000).is_none());
        cache.put("h".into(), p, 1_000);
        assert_eq!(cache.get("h", 1_000).map(|p| p.token_id), Some("t".into()));
        assert!(cache.get("h", 1_000 + TOKEN_CACHE_MS - 1).is_some());
        assert!(cache.get("h", 1_000 + TOKEN_CACHE_MS).is_none());
        // A clock that went back does not stretch the bound.
        assert!(cache.get("h", 999).is_none());
        assert!(cache.get("other", 1_000).is_none());
        cache.clear();
        assert!(cache.get("h", 1_000).is_none());
    }

    #[test]
    fn admin_implies_every_scope() {
        let p = Principal {
            token_id: "t".into(),
            name: "n".into(),
            scopes: vec![Scope::Admin],
            person_id: None,
        };
        assert!(Scope::ALL.iter().all(|s| p.require(*s).is_ok()));
        let r = Principal {
            scopes: vec![Scope::Read],
            ..p
        };
        assert!(r.require(Scope::EventsWrite).is_err());
        assert!(r.require_any(&[Scope::Request, Scope::Read]).is_ok());
        let e = r
            .require_any(&[Scope::Request, Scope::Approve])
            .unwrap_err();
        assert_eq!(
            e.message,
            "this token lacks the `request` or `approve` scope"
        );
        assert_eq!("events:write".parse::<Scope>(), Ok(Scope::EventsWrite));
        assert!("root".parse::<Scope>().is_err());
    }
}
