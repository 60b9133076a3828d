//! What events told of clients, read for a plan, a time bound or an approver.

use crate::error::Result;
use tenure_core::Grant;
use tenure_core::config::{ClientFacts, Config, TimeBound};

/// What events told of `entitlement`'s client, if it has one.
pub(crate) async fn client_facts_of(
    c: &mut tenure_store::Conn,
    config: &Config,
    entitlement: &str,
) -> Result<ClientFacts> {
    let client = config
        .entitlements
        .get(entitlement)
        .and_then(|e| e.client.as_deref());
    told_clients(c, config, client.as_slice()).await
}

/// `entitlement`'s time bound, with its client's terms as events told of them.
pub(crate) async fn time_bound(
    c: &mut tenure_store::Conn,
    config: &Config,
    entitlement: &str,
) -> Result<Option<TimeBound>> {
    let clients = client_facts_of(c, config, entitlement).await?;
    Ok(config.time_bound_with(entitlement, &clients))
}

/// What events told of the clients that bear on a person's access (see [`ClientFacts`]).
pub(crate) async fn client_facts(
    c: &mut tenure_store::Conn,
    config: &Config,
    engagements: &[tenure_core::Engagement],
    grants: &[Grant],
) -> Result<ClientFacts> {
    let ids: Vec<&str> = config
        .clients_involved(engagements, grants.iter().map(|g| g.entitlement.as_str()))
        .into_iter()
        .collect();
    told_clients(c, config, &ids).await
}

/// The stored clients among `ids`, each over its configured self.
pub(crate) async fn told_clients(
    c: &mut tenure_store::Conn,
    config: &Config,
    ids: &[&str],
) -> Result<ClientFacts> {
    if ids.is_empty() {
        return Ok(ClientFacts::default());
    }
    let told = tenure_store::clients_by_ids(c, ids).await?;
    Ok(ClientFacts::new(config, told))
}
