//! Whether the people and clients events name are ones tenure knows, decided when the events
//! come in, so an event about a stranger is refused at once instead of accepted and failed later.
//!
//! A **person** is known when they are stored, or when a hire (or rehire) of theirs is stored and
//! has not taken effect yet (a future-dated hire), or when the same batch of events hires them,
//! wherever in the batch the hire stands: events take effect in order of their times, not of their
//! place in a batch. Only hires and rehires may name someone unknown.
//!
//! A **client** is known when `tenure.toml` configures it, when an event carried it in full
//! before (stored from that event), when an engagement names it, or when an event of the same
//! batch carries it in full. An engagement event that carries its client in full introduces it.

use crate::event::{ClientInput, EventError, EventInput, EventType};
use std::collections::BTreeSet;

/// How the events of a batch reach the store, which decides which of its hires vouch for which
/// of its other events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Stored together, in one transaction: every hire of the batch vouches for every event.
    Together,
    /// Submitted one after the other: only the hires (and clients carried in full) before an
    /// event vouch for it.
    InTurn,
}

/// The ids of a batch that the store (or the configuration) may have to vouch for: the people of
/// events other than hires, and the clients named by id alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unvouched<'a> {
    /// Person ids to look up.
    pub people: BTreeSet<&'a str>,
    /// Client ids to look up.
    pub clients: BTreeSet<&'a str>,
}

/// The batch's own word: whom it hires and which clients it carries in full.
fn introduced<'a>(events: &[&'a EventInput]) -> (BTreeSet<&'a str>, BTreeSet<&'a str>) {
    let hired = events
        .iter()
        .filter(|e| matches!(e.kind, EventType::Hire | EventType::Rehire))
        .map(|e| e.person.id.as_str())
        .collect();
    let carried = events
        .iter()
        .filter_map(|e| match e.engagement.as_ref().map(|en| &en.client) {
            Some(ClientInput::Full(c)) => Some(c.id.as_str()),
            _ => None,
        })
        .collect();
    (hired, carried)
}

/// The client an engagement event names by id alone.
fn client_by_id(e: &EventInput) -> Option<&str> {
    match e.engagement.as_ref().map(|en| &en.client) {
        Some(ClientInput::Id(id)) => Some(id.as_str()),
        _ => None,
    }
}

/// What to look up for `events`.
pub fn unvouched<'a>(events: &[&'a EventInput]) -> Unvouched<'a> {
    let mut out = Unvouched::default();
    for e in events {
        if !matches!(e.kind, EventType::Hire | EventType::Rehire) {
            out.people.insert(e.person.id.as_str());
        }
        if let Some(id) = client_by_id(e) {
            out.clients.insert(id);
        }
    }
    out
}

/// Each event's verdict, in order: `Ok`, or the field naming whom tenure does not know.
/// `known_person` and `known_client` answer for the ids [`unvouched`] listed (stored people and
/// pending hires; configured, stored and engaged clients).
pub fn check(
    events: &[&EventInput],
    batch: Batch,
    known_person: impl Fn(&str) -> bool,
    known_client: impl Fn(&str) -> bool,
) -> Vec<Result<(), EventError>> {
    let whole = introduced(events);
    let mut verdicts = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let before;
        let (hired, carried) = match batch {
            Batch::Together => &whole,
            Batch::InTurn => {
                before = introduced(&events[..i]);
                &before
            }
        };
        let person = e.person.id.as_str();
        let is_hire = matches!(e.kind, EventType::Hire | EventType::Rehire);
        verdicts.push(if !is_hire && !hired.contains(person) && !known_person(person) {
            Err(EventError {
                field: "person.id".into(),
                message: format!(
                    "person `{person}` is not known: tenure has no such person and no hire of them waiting to take effect; send their hire first"
                ),
            })
        } else {
            match client_by_id(e) {
                Some(client) if !carried.contains(client) && !known_client(client) => {
                    Err(EventError {
                        field: "engagement.client".into(),
                        message: format!(
                            "client `{client}` is not known: configure it in tenure.toml ([[clients]]) or send it in full (`{{\"id\": \"{client}\", \"name\": ...}}`)"
                        ),
                    })
                }
                _ => Ok(()),
            }
        });
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    fn ev(json: &str) -> EventInput {
        parse_event(json.as_bytes()).expect(json)
    }

    fn hire(id: &str) -> EventInput {
        ev(&format!(
            r#"{{"type":"hire","person":{{"id":"{id}","name":"N","email":"n@example.com","worker_type":"employee"}}}}"#
        ))
    }

    fn engage(person: &str, client: &str) -> EventInput {
        ev(&format!(
            r#"{{"type":"engagement_start","person":{{"id":"{person}"}},"engagement":{{"client":{client},"role":"consultant"}}}}"#
        ))
    }

    #[test]
    fn only_hires_may_name_a_stranger_and_the_batch_vouches_for_its_own_hires() {
        let leave = ev(r#"{"type":"leave","person":{"id":"p1"}}"#);
        let transfer = ev(r#"{"type":"transfer","person":{"id":"p2","title":"CTO"}}"#);
        let h = hire("p1");
        let h3 = hire("p3");
        // The leave comes first in the batch, the hire after: it still counts.
        let batch = [&leave, &transfer, &h, &h3];
        let u = unvouched(&batch);
        assert_eq!(u.people, BTreeSet::from(["p1", "p2"]));
        assert!(u.clients.is_empty());
        let verdicts = check(&batch, Batch::Together, |_| false, |_| true);
        assert!(verdicts[0].is_ok() && verdicts[2].is_ok() && verdicts[3].is_ok());
        let e = verdicts[1].clone().unwrap_err();
        assert_eq!(e.field, "person.id");
        assert!(e.message.contains("`p2` is not known"), "{}", e.message);
        // Known to the store: accepted.
        assert!(check(&[&transfer], Batch::Together, |p| p == "p2", |_| true)[0].is_ok());
        // Submitted in turn, the leave goes before the hire that would vouch for it.
        let in_turn = check(&batch, Batch::InTurn, |_| false, |_| true);
        assert_eq!(in_turn[0].clone().unwrap_err().field, "person.id");
        let later = [&h, &leave];
        assert!(
            check(&later, Batch::InTurn, |_| false, |_| true)
                .iter()
                .all(Result::is_ok)
        );
    }

    #[test]
    fn a_client_named_by_id_must_be_known_or_carried_in_full_by_the_batch() {
        let by_id = engage("p1", r#""nope""#);
        let full = engage("p2", r#"{"id":"nope","name":"Nope Ltd"}"#);
        let u = unvouched(&[&by_id]);
        assert_eq!(u.clients, BTreeSet::from(["nope"]));
        let e = check(&[&by_id], Batch::Together, |_| true, |_| false)[0]
            .clone()
            .unwrap_err();
        assert_eq!(e.field, "engagement.client");
        assert!(e.message.contains("`nope` is not known"), "{}", e.message);
        assert!(check(&[&by_id], Batch::Together, |_| true, |c| c == "nope")[0].is_ok());
        // Carried in full, by this event or another of the batch.
        assert!(
            check(&[&by_id, &full], Batch::Together, |_| true, |_| false)
                .iter()
                .all(Result::is_ok)
        );
        let in_turn = check(&[&by_id, &full], Batch::InTurn, |_| true, |_| false);
        assert!(in_turn[0].is_err() && in_turn[1].is_ok());
    }
}
