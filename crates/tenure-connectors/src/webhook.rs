//! `webhook`: a generic HTTP connector for ticketing, ITSM and collaboration APIs.
//!
//! Each action has a request template (method, URL, JSON body, headers) rendered from the
//! person and entitlement (see [`crate::template`]). Every request is signed with the Standard
//! Webhooks scheme: `webhook-id` (the step's operation id, the same on every retry, so the
//! receiver can drop duplicates), `webhook-timestamp` (seconds) and `webhook-signature`
//! (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the `whsec_` secret).
//!
//! Requests only go to `allowed_hosts`. Redirects are followed only to allowed hosts; private,
//! loopback and link-local addresses (cloud metadata endpoints among them), and the IPv6 forms
//! that reach them (NAT64, 6to4, IPv4-mapped or -compatible, Teredo), are refused unless
//! `allow_private_networks` is set, both for literal IPs and for names that resolve to them,
//! and the address checked is the address connected to. Proxies from the environment are not
//! used, so nothing bypasses these checks.
//!
//! With `await_callback`, a `2xx` only means "accepted": the step waits for the receiver to
//! report the operation done or failed at `POST /api/v1/tasks/{op_id}/complete|fail`.

use crate::manual::{self, NowFn};
use crate::settings::{self, Secret};
use crate::template::{self, Context};
use crate::{ConnectorError, Op};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tenure_core::planner::Action;
use tenure_core::{Entitlement, Person};
use tenure_store::{NewTask, Store, TaskKind};

/// One action's request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// HTTP method (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL; templates only after the host (in the path and query), percent-encoded.
    pub url: String,
    /// The JSON body, every string a template. No body when absent.
    pub body: Option<serde_json::Value>,
    /// Extra headers (templates). Credentials do not go here: see `bearer_token_env`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Wait for the receiver's completion callback after a `2xx`.
    #[serde(default)]
    pub await_callback: bool,
}

fn default_method() -> String {
    "POST".into()
}

/// A `webhook` system's settings (the `[systems.settings]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Hosts requests may go to (exact names or IPs, compared case-insensitively).
    pub allowed_hosts: Vec<String>,
    /// Environment variable holding the `whsec_...` signing secret.
    pub secret_env: String,
    /// Environment variable holding a bearer token sent as `Authorization`, if any.
    pub bearer_token_env: Option<String>,
    /// Let requests reach private, loopback and link-local addresses (an on-premises ITSM).
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Timeout of one request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often a step waiting for a callback looks at its task anyway.
    #[serde(default = "default_recheck")]
    pub callback_recheck_ms: u64,
    /// Request templates by action (`create_account`, `grant`, ...). An action with no
    /// template succeeds without a request.
    pub operations: BTreeMap<String, RequestTemplate>,
    /// URL fetched with GET by the health check, if any.
    pub health_url: Option<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_recheck() -> u64 {
    60_000
}

/// Whether an address is one an outside request must not reach without
/// `allow_private_networks`: loopback, private, link-local (169.254.169.254 among them),
/// CGNAT, unspecified, multicast, documentation, unique-local and site-local, and every IPv6
/// form that carries an IPv4 address a router or translator may deliver to (IPv4-mapped,
/// IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo) when that IPv4 address is refused.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT
                || o[0] == 0
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return true;
            }
            if let Some(v4) = embedded_ipv4(v6) {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed inside)
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64 (RFC 8215)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] & 0xfff0) == 0x3ff0 // documentation (RFC 9637)
        }
    }
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that reach an
/// IPv4 host: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::` and Teredo
/// `2001:0::` (the client's address, stored inverted in the last 32 bits).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let last = |hi: u16, lo: u16| {
        std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
    };
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; `::` and `::1` are handled first).
        [0, 0, 0, 0, 0, 0xffff | 0, hi, lo] => Some(last(hi, lo)),
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(last(hi, lo)),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix, RFC 6052).
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        // 2002:AABB:CCDD::/48 (6to4, RFC 3056): the relay delivers to AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        // 2001:0::/32 (Teredo, RFC 4380): the client's address is the last 32 bits inverted.
        [0x2001, 0, .., hi, lo] => Some(last(!hi, !lo)),
        _ => None,
    }
}

/// Checks a URL's scheme and host against the allow-list (and, for literal IPs, the private
/// ranges).
fn check_destination(url: &url::Url, allowed: &[String], private_ok: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", url.scheme()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("`{url}` has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let literal = bare.parse::<IpAddr>().ok();
    // The URL parser writes IPv6 literals in their shortest form: compare addresses as
    // addresses, so `::127.0.0.1` in allowed_hosts matches `[::7f00:1]`.
    let listed = |h: &String| {
        h.eq_ignore_ascii_case(bare)
            || literal.is_some_and(|ip| h.parse::<IpAddr>().is_ok_and(|a| a == ip))
    };
    if !allowed.iter().any(listed) {
        return Err(format!("host `{bare}` is not in allowed_hosts"));
    }
    if let Some(ip) = literal
        && !private_ok
        && is_private(ip)
    {
        return Err(format!(
            "`{ip}` is a private, loopback or link-local address (set allow_private_networks to allow it)"
        ));
    }
    Ok(())
}

/// The part of a URL template before its path: scheme and authority. It may hold no template.
fn origin_of(t: &str) -> &str {
    let after_scheme = t.find("://").map_or(0, |i| i + 3);
    let end = t[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(t.len(), |i| after_scheme + i);
    &t[..end]
}

impl WebhookSettings {
    /// Reads and checks settings from a system's settings map.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        settings::refuse_inline_secrets(map, &["secret", "bearer_token"])?;
        let s: WebhookSettings = settings::parse(map)?;
        if s.allowed_hosts.is_empty() {
            return Err("allowed_hosts must name at least one host".into());
        }
        for (name, op) in &s.operations {
            let action: Action = name
                .parse()
                .map_err(|e| format!("operations.{name}: {e}"))?;
            let with_ent = matches!(action, Action::Grant | Action::Revoke);
            let at = |e: String| format!("operations.{name}: {e}");
            let origin = origin_of(&op.url);
            if origin.contains("{{") {
                return Err(at("the URL's scheme and host may not hold templates".into()));
            }
            template::check(&op.url, with_ent).map_err(at)?;
            let parsed = url::Url::parse(origin).map_err(|e| at(format!("url: {e}")))?;
            check_destination(&parsed, &s.allowed_hosts, s.allow_private_networks).map_err(at)?;
            reqwest::Method::from_bytes(op.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| at(format!("method `{}` is not an HTTP method", op.method)))?;
            if let Some(b) = &op.body {
                template::check_json(b, with_ent).map_err(at)?;
            }
            for (h, v) in &op.headers {
                if h.eq_ignore_ascii_case("authorization")
                    || h.to_ascii_lowercase().starts_with("webhook-")
                {
                    return Err(at(format!(
                        "header `{h}` is set by tenure (credentials come from bearer_token_env)"
                    )));
                }
                reqwest::header::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| at(format!("`{h}` is not a header name")))?;
                template::check(v, with_ent).map_err(at)?;
            }
        }
        if let Some(h) = &s.health_url {
            let u = url::Url::parse(h).map_err(|e| format!("health_url: {e}"))?;
            check_destination(&u, &s.allowed_hosts, s.allow_private_networks)
                .map_err(|e| format!("health_url: {e}"))?;
        }
        Ok(s)
    }
}

/// A Standard Webhooks signing key (`whsec_` + base64).
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Decodes `whsec_<base64>` (the prefix is optional).
    pub fn parse(secret: &Secret) -> Result<SigningKey, String> {
        let b64 = secret
            .expose()
            .strip_prefix("whsec_")
            .unwrap_or(secret.expose());
        let key = B64
            .decode(b64)
            .map_err(|_| "the signing secret is not whsec_ followed by base64".to_string())?;
        if key.len() < 16 {
            return Err("the signing secret is shorter than 16 bytes".into());
        }
        Ok(SigningKey(key))
    }

    /// `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Verifies a `webhook-signature` header (space-separated signatures, any may match) and
    /// the timestamp's freshness (±`tolerance_secs` around `now_secs`).
    pub fn verify(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
        now_secs: i64,
        tolerance_secs: i64,
    ) -> bool {
        if (now_secs - timestamp).abs() > tolerance_secs {
            return false;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        header.split(' ').any(|sig| {
            sig.strip_prefix("v1,")
                .and_then(|b| B64.decode(b).ok())
                .is_some_and(|expected| mac.clone().verify_slice(&expected).is_ok())
        })
    }
}

const PRIVATE_REFUSED: &str = "resolves only to private, loopback or link-local addresses";

/// Resolves names and drops private addresses, so a public name pointing inside is refused at
/// connect time (the checked address is the one connected to).
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("`{host}` {PRIVATE_REFUSED}").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Sends signed requests for one system.
pub struct WebhookConnector {
    system: String,
    settings: WebhookSettings,
    key: SigningKey,
    bearer: Option<Secret>,
    client: reqwest::Client,
    store: Store,
    now: NowFn,
}

impl WebhookConnector {
    /// Builds the connector; secrets come in already read.
    pub fn new(
        system: &str,
        settings: WebhookSettings,
        secret: Secret,
        bearer: Option<Secret>,
        store: Store,
        now: NowFn,
    ) -> Result<Self, String> {
        let key = SigningKey::parse(&secret)?;
        let allowed = settings.allowed_hosts.clone();
        let private_ok = settings.allow_private_networks;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("more than 5 redirects");
            }
            match check_destination(attempt.url(), &allowed, private_ok) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(format!("redirect refused: {e}")),
            }
        });
        let mut builder = reqwest::Client::builder()
            .redirect(policy)
            .no_proxy()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms));
        if !settings.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder.build().map_err(|e| format!("http client: {e}"))?;
        Ok(WebhookConnector {
            system: system.into(),
            settings,
            key,
            bearer,
            client,
            store,
            now,
        })
    }

    /// Builds the connector from a system's settings map, reading secrets from the
    /// environment.
    pub fn from_map(
        system: &str,
        map: &serde_json::Map<String, serde_json::Value>,
        store: Store,
        now: NowFn,
    ) -> Result<Self, String> {
        let s = WebhookSettings::from_map(map)?;
        let secret = Secret::from_env("secret_env", &s.secret_env)?;
        let bearer = Secret::from_optional_env("bearer_token_env", s.bearer_token_env.as_deref())?;
        WebhookConnector::new(system, s, secret, bearer, store, now)
    }

    async fn call(
        &self,
        op: &Op,
        action: Action,
        person: &Person,
        entitlement: Option<&Entitlement>,
    ) -> Result<(), ConnectorError> {
        let Some(t) = self.settings.operations.get(action.as_str()) else {
            return Ok(()); // nothing configured for this action: nothing to do
        };
        let now = (self.now)();
        if t.await_callback {
            // Sent before? Then the answer is the callback's, and nothing is sent again.
            let mut c = self
                .store
                .reader()
                .await
                .map_err(|e| ConnectorError::retryable(format!("task store: {e}")))?;
            if let Some(task) = tenure_store::get_task(&mut c, &op.id)
                .await
                .map_err(|e| ConnectorError::retryable(format!("task store: {e}")))?
            {
                return manual::answer(&task, self.settings.callback_recheck_ms);
            }
        }
        let ctx = Context {
            system: &self.system,
            action,
            op,
            person,
            entitlement,
        };
        let url = template::render(&t.url, &ctx, template::percent_encode);
        let parsed = url::Url::parse(&url)
            .map_err(|e| ConnectorError::Permanent(format!("rendered URL `{url}`: {e}")))?;
        check_destination(
            &parsed,
            &self.settings.allowed_hosts,
            self.settings.allow_private_networks,
        )
        .map_err(ConnectorError::Permanent)?;
        let body = match &t.body {
            Some(b) => {
                serde_json::to_vec(&template::render_json(b, &ctx)).expect("JSON values serialize")
            }
            None => Vec::new(),
        };
        let method = reqwest::Method::from_bytes(t.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ConnectorError::Permanent(format!("method `{}`", t.method)))?;
        let ts = now.div_euclid(1000);
        let mut req = self
            .client
            .request(method, parsed)
            .header("webhook-id", &op.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", self.key.sign(&op.id, ts, &body))
            .header("idempotency-key", &op.id);
        if !body.is_empty() {
            req = req.header("content-type", "application/json").body(body);
        }
        for (h, v) in &t.headers {
            req = req.header(h, template::render(v, &ctx, str::to_string));
        }
        req = crate::with_traceparent(req);
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b.expose());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_redirect() => {
                return Err(ConnectorError::Permanent(format!(
                    "webhook: {}",
                    error_chain(&e)
                )));
            }
            Err(e) if e.is_builder() => {
                return Err(ConnectorError::Permanent(format!(
                    "webhook: {}",
                    error_chain(&e)
                )));
            }
            Err(e) => {
                let chain = error_chain(&e);
                // The guarded resolver refused the destination: no retry will change that.
                if chain.contains(PRIVATE_REFUSED) {
                    return Err(ConnectorError::Permanent(format!("webhook: {chain}")));
                }
                // Every operation changes something: one that went out unanswered may have.
                return Err(ConnectorError::from_http(
                    &e,
                    true,
                    format!("webhook: {chain}"),
                ));
            }
        };
        let status = resp.status();
        let retry_after_ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s * 1000);
        let text = resp.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(300).collect();
        let removing = matches!(
            action,
            Action::Revoke | Action::DeleteAccount | Action::DisableAccount
        );
        let adding = matches!(action, Action::CreateAccount | Action::Grant);
        if status.is_success() {
            if t.await_callback {
                let task = manual::find_or_open(
                    &self.store,
                    NewTask {
                        id: op.id.clone(),
                        kind: TaskKind::Callback,
                        system: self.system.clone(),
                        team: None,
                        person_id: person.id.clone(),
                        action: action.to_string(),
                        entitlement: entitlement.map(|e| e.id.clone()),
                        title: format!(
                            "{action} of {} on {} accepted (HTTP {status})",
                            person.id, self.system
                        ),
                        created_at: now,
                        due_at: None,
                    },
                )
                .await?;
                return manual::answer(&task, self.settings.callback_recheck_ms);
            }
            return Ok(());
        }
        // Already there when adding, already gone when removing: done.
        if (adding && status == reqwest::StatusCode::CONFLICT)
            || (removing && matches!(status.as_u16(), 404 | 410))
        {
            return Ok(());
        }
        let message = format!("webhook: HTTP {status}: {snippet}");
        if status == reqwest::StatusCode::GATEWAY_TIMEOUT {
            // A proxy gave up waiting for the service, which may have acted all the same.
            Err(ConnectorError::Unknown(message))
        } else if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
            Err(ConnectorError::Retryable {
                message,
                retry_after_ms,
            })
        } else if status.is_redirection() {
            Err(ConnectorError::Permanent(format!(
                "webhook: redirect not followed: HTTP {status}"
            )))
        } else {
            Err(ConnectorError::Permanent(message))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

crate::connector_by_action!(WebhookConnector, call, "webhook", {
    async fn health(&self) -> Result<(), ConnectorError> {
        let Some(u) = &self.settings.health_url else {
            return Ok(());
        };
        let r = self
            .client
            .get(u)
            .send()
            .await
            .map_err(|e| ConnectorError::retryable(format!("webhook: {}", error_chain(&e))))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(ConnectorError::retryable(format!(
                "webhook health: HTTP {}",
                r.status()
            )))
        }
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification's reference libraries.
        let key =
            SigningKey::parse(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(key.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &sig,
            1614265330,
            300
        ));
        assert!(!key.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b"{}",
            &sig,
            1614265330,
            300
        ));
        assert!(!key.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &sig,
            1614265330 + 301,
            300
        ));
    }

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Every IPv6 form that a host, router or translator turns into an IPv4 destination is
    /// refused exactly when that IPv4 address is: each refused IPv4 range in each form, and
    /// a public IPv4 address in each form is let through.
    #[test]
    fn ipv6_forms_of_refused_ipv4_addresses_are_refused() {
        // (form, how to write a.b.c.d in it)
        type Form = (&'static str, fn([u8; 4]) -> String);
        let forms: [Form; 8] = [
            ("IPv4-mapped", |o| {
                format!("::ffff:{}.{}.{}.{}", o[0], o[1], o[2], o[3])
            }),
            ("IPv4-compatible", |o| {
                format!("::{}.{}.{}.{}", o[0], o[1], o[2], o[3])
            }),
            ("IPv4-translated", |o| {
                format!("::ffff:0:{}.{}.{}.{}", o[0], o[1], o[2], o[3])
            }),
            ("NAT64", |o| {
                format!("64:ff9b::{}.{}.{}.{}", o[0], o[1], o[2], o[3])
            }),
            ("NAT64 in hex", |o| {
                format!(
                    "64:ff9b::{:x}:{:x}",
                    u16::from_be_bytes([o[0], o[1]]),
                    u16::from_be_bytes([o[2], o[3]])
                )
            }),
            ("6to4", |o| {
                format!(
                    "2002:{:x}:{:x}::1",
                    u16::from_be_bytes([o[0], o[1]]),
                    u16::from_be_bytes([o[2], o[3]])
                )
            }),
            ("6to4 with a subnet", |o| {
                format!(
                    "2002:{:x}:{:x}:42:1:2:3:4",
                    u16::from_be_bytes([o[0], o[1]]),
                    u16::from_be_bytes([o[2], o[3]])
                )
            }),
            ("Teredo", |o| {
                format!(
                    "2001:0:4136:e378:8000:63bf:{:x}:{:x}",
                    !u16::from_be_bytes([o[0], o[1]]),
                    !u16::from_be_bytes([o[2], o[3]])
                )
            }),
        ];
        let refused: [[u8; 4]; 10] = [
            [127, 0, 0, 1],       // loopback
            [10, 0, 0, 7],        // private
            [172, 16, 5, 4],      // private
            [192, 168, 1, 1],     // private
            [169, 254, 169, 254], // link-local: cloud metadata
            [100, 100, 0, 1],     // CGNAT
            [0, 0, 0, 0],         // unspecified
            [224, 0, 0, 1],       // multicast
            [192, 0, 2, 10],      // documentation
            [255, 255, 255, 255], // broadcast
        ];
        for (name, write) in forms {
            for o in refused {
                let text = write(o);
                let ip: IpAddr = text
                    .parse()
                    .unwrap_or_else(|e| panic!("{name} {text}: {e}"));
                assert!(
                    is_private(ip),
                    "{name} form {text} of {o:?} must be refused"
                );
            }
            let public = write([93, 184, 216, 34]);
            let ip: IpAddr = public.parse().unwrap();
            assert!(
                !is_private(ip),
                "{name} form {public} of a public address is allowed"
            );
        }
        // Ranges refused whatever they carry.
        for ip in [
            "fec0::1",            // site-local
            "feff::1",            // site-local, top of the range
            "64:ff9b:1::808:808", // local-use NAT64 (RFC 8215), even of 8.8.8.8
            "2001:db8::1",        // documentation
            "3fff::1",            // documentation (RFC 9637)
            "ff02::1",            // multicast
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        // Neighbours of those ranges are ordinary addresses.
        for ip in ["fbff::1", "2003::1", "2001:4860:4860::8888", "64:ff9b:2::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn literal_ipv6_forms_of_private_addresses_are_refused_at_load() {
        for host in [
            "[64:ff9b::a9fe:a9fe]",
            "[::127.0.0.1]",
            "[2002:a00:1::]",
            "[fec0::1]",
        ] {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let e = settings(serde_json::json!({
                "allowed_hosts": [bare], "secret_env": "S",
                "operations": {"create_account": {"url": format!("http://{host}/u")}}
            }))
            .unwrap_err();
            assert!(e.contains("private"), "{host}: {e}");
        }
    }

    fn settings(v: serde_json::Value) -> Result<WebhookSettings, String> {
        WebhookSettings::from_map(v.as_object().unwrap())
    }

    #[test]
    fn destinations_are_checked_at_load() {
        let ok = serde_json::json!({
            "allowed_hosts": ["itsm.example.com"], "secret_env": "S",
            "operations": {"create_account": {"url": "https://itsm.example.com/u/{{person.id}}", "body": {"e": "{{person.email}}"}}}
        });
        assert!(settings(ok).is_ok());
        let other_host = serde_json::json!({
            "allowed_hosts": ["itsm.example.com"], "secret_env": "S",
            "operations": {"create_account": {"url": "https://evil.example.net/u"}}
        });
        assert!(
            settings(other_host)
                .unwrap_err()
                .contains("not in allowed_hosts")
        );
        let templated_host = serde_json::json!({
            "allowed_hosts": ["itsm.example.com"], "secret_env": "S",
            "operations": {"create_account": {"url": "https://{{person.department}}.example.com/u"}}
        });
        assert!(
            settings(templated_host)
                .unwrap_err()
                .contains("scheme and host")
        );
        let metadata = serde_json::json!({
            "allowed_hosts": ["169.254.169.254"], "secret_env": "S",
            "operations": {"create_account": {"url": "http://169.254.169.254/latest/meta-data"}}
        });
        assert!(settings(metadata).unwrap_err().contains("link-local"));
        let auth_header = serde_json::json!({
            "allowed_hosts": ["itsm.example.com"], "secret_env": "S",
            "operations": {"grant": {"url": "https://itsm.example.com/g", "headers": {"Authorization": "Bearer abc"}}}
        });
        assert!(
            settings(auth_header)
                .unwrap_err()
                .contains("bearer_token_env")
        );
        let inline_secret = serde_json::json!({
            "allowed_hosts": ["itsm.example.com"], "secret": "whsec_x", "secret_env": "S", "operations": {}
        });
        assert!(settings(inline_secret).unwrap_err().contains("secret_env"));
        let unknown_action = serde_json::json!({
            "allowed_hosts": ["h"], "secret_env": "S", "operations": {"explode": {"url": "https://h/"}}
        });
        assert!(settings(unknown_action).unwrap_err().contains("explode"));
    }
}
