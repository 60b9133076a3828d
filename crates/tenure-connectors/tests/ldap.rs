//! The `ldap` connector against a real OpenLDAP `slapd` started by the test (see
//! `support/slapd.rs`), over StartTLS. Skips with a notice where slapd is not installed; fails
//! in CI (`CI=true`).

mod support;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use std::collections::HashSet;
use support::slapd::{ADMIN_DN, ADMIN_PASSWORD, Slapd};
use support::*;
use tenure_connectors::ldap::{LdapConnector, LdapSettings};
use tenure_connectors::settings::Secret;
use tenure_connectors::{Connector, ConnectorError, InventoryAccount, attribute};

const PEOPLE: &str = "ou=people,dc=example,dc=com";
const DISABLED: &str = "ou=disabled,dc=example,dc=com";
const GROUPS: &str = "ou=groups,dc=example,dc=com";
const PLACEHOLDER: &str = "cn=nobody,dc=example,dc=com";

async fn admin(url: &str) -> ldap3::Ldap {
    support::slapd::admin(url).await
}

/// The directory's skeleton: base, three OUs, two groups.
async fn seed(url: &str) {
    support::slapd::seed(url, &["developers", "vpn users"], PLACEHOLDER).await;
}

fn connector(url: &str, starttls: bool) -> LdapConnector {
    let map = serde_json::json!({
        "url": url,
        "starttls": starttls,
        "tls_insecure_skip_verify": true,
        "bind_dn": ADMIN_DN,
        "bind_password_env": "UNUSED_IN_TESTS",
        "users_dn": PEOPLE,
        "disabled_users_dn": DISABLED,
        "groups_dn": GROUPS,
        "empty_group_member": PLACEHOLDER,
        "page_size": 2,
        "timeout_ms": 5000,
    });
    let settings = LdapSettings::from_map(map.as_object().unwrap()).unwrap();
    LdapConnector::new(settings, Secret::new(ADMIN_PASSWORD))
}

async fn members(url: &str, group: &str) -> Vec<String> {
    support::slapd::members(url, &format!("cn={group},{GROUPS}")).await
}

async fn entry(url: &str, dn: &str) -> Option<SearchEntry> {
    let mut l = admin(url).await;
    match l
        .search(dn, Scope::Base, "(objectClass=*)", vec!["*"])
        .await
        .unwrap()
        .success()
    {
        Ok((rs, _)) => rs.into_iter().next().map(SearchEntry::construct),
        Err(_) => None,
    }
}

async fn can_bind(url: &str, dn: &str, pw: &str) -> bool {
    let settings = ldap3::LdapConnSettings::new()
        .set_starttls(true)
        .set_no_tls_verify(true);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await.unwrap();
    tokio::spawn(async move { conn.drive().await });
    ldap.simple_bind(dn, pw).await.unwrap().rc == 0
}

#[tokio::test]
async fn hire_transfer_leave_against_real_slapd_over_starttls() {
    // This directory refuses any operation on a connection without TLS.
    let Some(slapd) = Slapd::start_with(true) else {
        return;
    };
    let plain = connector(&slapd.url, false);
    let e = plain.health().await.unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}"); // confidentialityRequired
    seed(&slapd.url).await;
    let c = connector(&slapd.url, true);
    c.health().await.unwrap();

    let ada = person("ada");
    let dev = entitlement("dir:dev", "dir", "developers");
    let vpn = entitlement("dir:vpn", "dir", "vpn users");
    let ada_dn = format!("uid=ada,{PEOPLE}");

    // Hire (twice: the retry after a crash is "already done").
    c.create_account(&op("1"), &ada).await.unwrap();
    c.create_account(&op("1"), &ada).await.unwrap();
    c.grant(&op("2"), &ada, &dev).await.unwrap();
    c.grant(&op("2"), &ada, &dev).await.unwrap();
    let e = entry(&slapd.url, &ada_dn).await.expect("ada's entry");
    assert_eq!(e.attrs["mail"], vec!["ada@example.com"]);
    assert_eq!(e.attrs["departmentNumber"], vec!["Engineering"]);
    assert_eq!(
        members(&slapd.url, "developers").await,
        vec![ada_dn.clone()]
    );

    // She sets a password (outside tenure) and can sign in.
    admin(&slapd.url)
        .await
        .modify(
            &ada_dn,
            vec![Mod::Replace("userPassword", HashSet::from(["pw1"]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert!(can_bind(&slapd.url, &ada_dn, "pw1").await);

    // Transfer: title changes, one group goes (the placeholder comes back), another comes.
    let mut moved = ada.clone();
    moved.title = Some("Manager".into());
    c.update_account(&op("3"), &moved).await.unwrap();
    c.revoke(&op("4"), &ada, &dev).await.unwrap();
    c.revoke(&op("4"), &ada, &dev).await.unwrap();
    c.grant(&op("5"), &ada, &vpn).await.unwrap();
    assert_eq!(
        members(&slapd.url, "developers").await,
        vec![PLACEHOLDER.to_string()]
    );
    assert_eq!(members(&slapd.url, "vpn users").await, vec![ada_dn.clone()]);
    assert_eq!(c.list_memberships("ada").await.unwrap(), vec!["vpn users"]);
    assert_eq!(
        entry(&slapd.url, &ada_dn).await.unwrap().attrs["title"],
        vec!["Manager"]
    );

    // Leave: disabled (moved, password removed), revoked, deleted; each twice.
    c.disable_account(&op("6"), &ada).await.unwrap();
    c.disable_account(&op("6"), &ada).await.unwrap();
    let disabled_dn = format!("uid=ada,{DISABLED}");
    assert!(entry(&slapd.url, &ada_dn).await.is_none());
    let d = entry(&slapd.url, &disabled_dn)
        .await
        .expect("moved to the disabled OU");
    assert!(!d.attrs.contains_key("userPassword"));
    assert!(!can_bind(&slapd.url, &disabled_dn, "pw1").await);
    let listed = c.list_accounts().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].enabled);
    c.revoke(&op("7"), &ada, &vpn).await.unwrap();
    assert_eq!(
        members(&slapd.url, "vpn users").await,
        vec![PLACEHOLDER.to_string()]
    );
    c.delete_account(&op("8"), &ada).await.unwrap();
    c.delete_account(&op("8"), &ada).await.unwrap();
    assert!(entry(&slapd.url, &disabled_dn).await.is_none());
    assert!(c.list_accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn rehire_enables_and_paged_list_sees_everyone() {
    let Some(slapd) = Slapd::start() else { return };
    seed(&slapd.url).await;
    let c = connector(&slapd.url, false);
    // Five people with a page size of two: the list pages three times.
    for i in 0..5 {
        c.create_account(&op("c"), &person(&format!("p{i}")))
            .await
            .unwrap();
    }
    // A hostile id stays one RDN value.
    let odd = person("x,ou=groups+cn=evil");
    c.create_account(&op("c"), &odd).await.unwrap();
    c.disable_account(&op("d"), &person("p1")).await.unwrap();
    let listed = c.list_accounts().await.unwrap();
    assert_eq!(listed.len(), 6);
    assert_eq!(listed.iter().filter(|a| !a.enabled).count(), 1);
    c.enable_account(&op("e"), &person("p1")).await.unwrap();
    assert!(c.list_accounts().await.unwrap().iter().all(|a| a.enabled));
    assert!(
        entry(&slapd.url, &format!("uid=p1,{PEOPLE}"))
            .await
            .is_some()
    );
    assert!(
        entry(&slapd.url, "cn=evil,ou=groups,dc=example,dc=com")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn errors_are_classified_against_real_slapd() {
    let Some(slapd) = Slapd::start() else { return };
    seed(&slapd.url).await;
    let c = connector(&slapd.url, false);
    let bob = person("bob");
    // A group that does not exist: permanent.
    c.create_account(&op("1"), &bob).await.unwrap();
    let e = c
        .grant(
            &op("2"),
            &bob,
            &entitlement("dir:x", "dir", "no such group"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    // A group DN under a parent that does not exist: permanent.
    let e = c
        .grant(
            &op("3"),
            &bob,
            &entitlement("dir:y", "dir", "cn=g,ou=nowhere,dc=example,dc=com"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    // A schema violation (mail is IA5String: ASCII only): permanent.
    let mut umlaut = person("dora");
    umlaut.email = "dörte@example.com".into();
    let e = c.create_account(&op("3b"), &umlaut).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("ldap result 21"), "{e}");
    // Granting to someone with no account: permanent.
    let e = c
        .grant(
            &op("4"),
            &person("ghost"),
            &entitlement("dir:dev", "dir", "developers"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    // Wrong bind password: permanent (and not in the message).
    let map = serde_json::json!({
        "url": slapd.url, "bind_dn": ADMIN_DN, "bind_password_env": "X",
        "users_dn": PEOPLE, "disabled_users_dn": DISABLED, "groups_dn": GROUPS,
    });
    let wrong = LdapConnector::new(
        LdapSettings::from_map(map.as_object().unwrap()).unwrap(),
        Secret::new("not-the-password"),
    );
    let e = wrong.create_account(&op("5"), &bob).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("49"), "{e}");
    assert!(!e.to_string().contains("not-the-password"));

    // The server goes away: retryable; it comes back on another port only in real life.
    let url = slapd.url.clone();
    drop(slapd);
    let e = c
        .create_account(&op("6"), &person("carol"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let fresh = connector(&url, false);
    assert!(fresh.health().await.unwrap_err().is_retryable());
}

/// Every person under the people and disabled OUs pages out, the ones added by hand too, with
/// the groups under `groups_dn` that name them as a member (a disabled person's membership
/// still naming where the account was when granted included, as `revoke` sees it), however
/// the member DN is spelled.
#[tokio::test]
async fn inventory_pages_through_people_with_their_groups() {
    let Some(slapd) = Slapd::start() else { return };
    seed(&slapd.url).await;
    let c = connector(&slapd.url, false);
    let dev = entitlement("dir:dev", "dir", "developers");
    let vpn = entitlement("dir:vpn", "dir", "vpn users");
    for id in ["ada", "bob", "cat", "dan"] {
        c.create_account(&op(id), &person(id)).await.unwrap();
    }
    c.grant(&op("g1"), &person("ada"), &dev).await.unwrap();
    c.grant(&op("g2"), &person("ada"), &vpn).await.unwrap();
    c.grant(&op("g3"), &person("bob"), &vpn).await.unwrap();
    c.grant(&op("g4"), &person("cat"), &dev).await.unwrap();
    c.disable_account(&op("d1"), &person("cat")).await.unwrap();

    // Behind tenure's back: a person with an HR number, in a group under a DN spelled
    // differently; and an entry with no uid at all.
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    let mut l = admin(&slapd.url).await;
    let hand_made = [
        (
            format!("uid=zed,{PEOPLE}"),
            vec![
                ("uid", "zed"),
                ("cn", "Zed Hand"),
                ("sn", "Hand"),
                ("mail", "zed@corp.example"),
                ("employeeNumber", "E-77"),
            ],
        ),
        (
            format!("cn=Printer Admin,{PEOPLE}"),
            vec![
                ("cn", "Printer Admin"),
                ("sn", "Admin"),
                ("mail", "printers@corp.example"),
            ],
        ),
    ];
    for (dn, attrs) in hand_made {
        let mut attrs: Vec<(String, HashSet<String>)> = attrs
            .into_iter()
            .map(|(k, v)| (k.to_string(), set(&[v])))
            .collect();
        attrs.push((
            "objectClass".into(),
            set(&["top", "person", "organizationalPerson", "inetOrgPerson"]),
        ));
        l.add(&dn, attrs).await.unwrap().success().unwrap();
    }
    for (group, member) in [
        ("developers", "UID=zed, OU=People, DC=example, DC=com"),
        (
            "vpn users",
            "cn=printer\\20admin,ou=people,dc=example,dc=com",
        ),
    ] {
        l.modify(
            &format!("cn={group},{GROUPS}"),
            vec![Mod::Add("member", HashSet::from([member]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    }

    // Two accounts a page (and two entries per paged-results request).
    let (sizes, mut got) = support::read_inventory(&c, 2).await;
    assert_eq!(sizes, [2, 2, 2]);
    got.sort_by(|a, b| a.key.cmp(&b.key));
    let attrs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let made = |id: &str, enabled: bool, groups: &[&str]| InventoryAccount {
        key: id.into(),
        person_id: Some(id.into()),
        enabled,
        attributes: attrs(&[
            (attribute::USERNAME, id),
            (attribute::EMAIL, &format!("{id}@example.com")),
            (attribute::EMPLOYEE_ID, id),
        ]),
        memberships: groups.iter().map(|g| g.to_string()).collect(),
    };
    assert_eq!(
        got,
        vec![
            InventoryAccount {
                key: "Printer Admin".into(),
                person_id: None,
                enabled: true,
                attributes: attrs(&[(attribute::EMAIL, "printers@corp.example")]),
                memberships: vec!["vpn users".into()],
            },
            made("ada", true, &["developers", "vpn users"]),
            made("bob", true, &["vpn users"]),
            made("cat", false, &["developers"]),
            made("dan", true, &[]),
            InventoryAccount {
                key: "zed".into(),
                person_id: Some("zed".into()),
                enabled: true,
                attributes: attrs(&[
                    (attribute::USERNAME, "zed"),
                    (attribute::EMAIL, "zed@corp.example"),
                    (attribute::EMPLOYEE_ID, "E-77"),
                ]),
                memberships: vec!["developers".into()],
            },
        ]
    );
}
