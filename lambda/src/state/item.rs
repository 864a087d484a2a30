//! An [`AlertState`] as a DynamoDB item, in plain attributes so that the
//! console and `aws dynamodb get-item` show it as it is.
//!
//! | attribute | type | |
//! |---|---|---|
//! | `alert` | S | the key: `<cluster>/<fingerprint>` |
//! | `version` | N | the optimistic lock of conditional writes |
//! | `expires_at` | N | TTL, epoch seconds |
//! | `status`, `starts_at`, `ends_at`, `envelope_id`, `generation` | S | |
//! | `transitions` | L of S | status changes, for flap detection |
//! | `sinks` | M | per sink: `ids` (L of S), `channel`, `ts`, `dedup_key`, `repeated_at` (S), `closed`, `flapping` (BOOL) |
//! | `held_id`, `held_envelope` | S | the envelope a maintenance window holds back, as JSON |
//! | `held_shard` | S | `held` while one is held: the key of the sparse index `held` |
//! | `held_until` | N | when its window ends, epoch seconds: the index's sort key |

use std::collections::{BTreeMap, HashMap};

use alert_envelope::Status;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;

use super::alert::{AlertState, Held, SinkRecord};

/// The key attribute, defined with the table in the CloudFormation stack.
pub const KEY: &str = "alert";
/// The version attribute that conditional writes compare.
pub const VERSION: &str = "version";
/// The TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";
/// The sparse index of held envelopes, defined with the table in the stack.
pub const HELD_INDEX: &str = "held";
/// Its partition key: one value, set only while an envelope is held.
pub const HELD_SHARD: &str = "held_shard";
/// Its sort key.
pub const HELD_UNTIL: &str = "held_until";
/// The held envelope's JSON.
pub const HELD_ENVELOPE: &str = "held_envelope";
/// `held_until` of a window with no end known: 9999-12-31T23:59:59Z.
const NO_END: i64 = 253_402_300_799;

/// A stored state with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The state.
    pub state: AlertState,
    /// Its version.
    pub version: u64,
    /// TTL, epoch seconds: DynamoDB deletes late, so reads check it.
    pub expires_at: i64,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The item of `state` at `version`, expiring at `expires_at`.
pub fn to_item(key: &str, state: &AlertState, version: u64, expires_at: i64) -> Item {
    let mut item = Item::new();
    item.insert(KEY.into(), s(key));
    item.insert(VERSION.into(), n(version));
    item.insert(EXPIRES_AT.into(), n(expires_at));
    item.insert("status".into(), s(state.status.as_str()));
    item.insert("starts_at".into(), s(state.starts_at.to_string()));
    if let Some(t) = state.ends_at {
        item.insert("ends_at".into(), s(t.to_string()));
    }
    item.insert("envelope_id".into(), s(&state.envelope_id));
    if let Some(t) = state.generation {
        item.insert("generation".into(), s(t.to_string()));
    }
    item.insert(
        "transitions".into(),
        AttributeValue::L(state.transitions.iter().map(|t| s(t.to_string())).collect()),
    );
    let sinks = state
        .sinks
        .iter()
        .map(|(name, r)| (name.clone(), sink_value(r)))
        .collect();
    item.insert("sinks".into(), AttributeValue::M(sinks));
    if let Some(h) = &state.held {
        item.insert("held_id".into(), s(&h.id));
        item.insert(HELD_ENVELOPE.into(), s(&h.envelope));
        item.insert(HELD_SHARD.into(), s(HELD_INDEX));
        item.insert(
            HELD_UNTIL.into(),
            n(h.until.map_or(NO_END, |t| t.as_second())),
        );
    }
    item
}

fn sink_value(r: &SinkRecord) -> AttributeValue {
    let mut m = HashMap::new();
    m.insert(
        "ids".to_string(),
        AttributeValue::L(r.ids.iter().map(s).collect()),
    );
    for (name, value) in [
        ("channel", r.channel.clone()),
        ("ts", r.ts.clone()),
        ("dedup_key", r.dedup_key.clone()),
        ("repeated_at", r.repeated_at.map(|t| t.to_string())),
    ] {
        if let Some(v) = value {
            m.insert(name.to_string(), s(v));
        }
    }
    if r.flapping {
        m.insert("flapping".to_string(), AttributeValue::Bool(true));
    }
    if r.closed {
        m.insert("closed".to_string(), AttributeValue::Bool(true));
    }
    AttributeValue::M(m)
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(format!("{name} is not a string")),
        None => Err(format!("{name} is missing")),
    }
}

fn time(item: &Item, name: &str) -> Result<Option<Timestamp>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(_) => text(item, name)?
            .parse()
            .map(Some)
            .map_err(|e| format!("{name} is not a timestamp: {e}")),
    }
}

fn number(item: &Item, name: &str) -> Result<i64, String> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|e| format!("{name} is not an integer: {e}")),
        _ => Err(format!("{name} is missing or not a number")),
    }
}

/// Reads an item back. An item this code did not write is an error that
/// names the attribute.
pub fn from_item(item: &Item) -> Result<Stored, String> {
    let status = match text(item, "status")? {
        "firing" => Status::Firing,
        "resolved" => Status::Resolved,
        other => return Err(format!("status {other:?} is neither firing nor resolved")),
    };
    let transitions = match item.get("transitions") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|v| v.as_s().ok()?.parse().ok())
            .collect(),
        _ => Vec::new(),
    };
    let mut sinks = BTreeMap::new();
    if let Some(AttributeValue::M(map)) = item.get("sinks") {
        for (name, value) in map {
            let AttributeValue::M(r) = value else {
                return Err(format!("sinks.{name} is not a map"));
            };
            sinks.insert(name.clone(), sink_record(r));
        }
    }
    Ok(Stored {
        state: AlertState {
            status,
            starts_at: time(item, "starts_at")?.ok_or("starts_at is missing")?,
            ends_at: time(item, "ends_at")?,
            envelope_id: text(item, "envelope_id")?.to_string(),
            generation: time(item, "generation")?,
            transitions,
            sinks,
            held: held(item)?,
        },
        version: u64::try_from(number(item, VERSION)?)
            .map_err(|_| "version is negative".to_string())?,
        expires_at: number(item, EXPIRES_AT)?,
    })
}

fn held(item: &Item) -> Result<Option<Held>, String> {
    if !item.contains_key("held_id") {
        return Ok(None);
    }
    let until = number(item, HELD_UNTIL)?;
    Ok(Some(Held {
        id: text(item, "held_id")?.to_string(),
        until: (until != NO_END)
            .then(|| Timestamp::from_second(until).map_err(|e| format!("{HELD_UNTIL}: {e}")))
            .transpose()?,
        envelope: text(item, HELD_ENVELOPE)?.to_string(),
    }))
}

fn sink_record(r: &HashMap<String, AttributeValue>) -> SinkRecord {
    let get = |name: &str| r.get(name).and_then(|v| v.as_s().ok()).cloned();
    SinkRecord {
        ids: match r.get("ids") {
            Some(AttributeValue::L(list)) => {
                list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
            }
            _ => Vec::new(),
        },
        channel: get("channel"),
        ts: get("ts"),
        dedup_key: get("dedup_key"),
        repeated_at: get("repeated_at").and_then(|t| t.parse().ok()),
        closed: matches!(r.get("closed"), Some(AttributeValue::Bool(true))),
        flapping: matches!(r.get("flapping"), Some(AttributeValue::Bool(true))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_state_survives_the_round_trip() {
        let mut sinks = BTreeMap::new();
        sinks.insert(
            "team-slack".to_string(),
            SinkRecord {
                ids: vec!["a".into(), "b".into()],
                channel: Some("C0123".into()),
                ts: Some("1503435956.000247".into()),
                dedup_key: None,
                repeated_at: Some("2026-12-02T10:05:00Z".parse().unwrap()),
                closed: true,
                flapping: true,
            },
        );
        let state = AlertState {
            status: Status::Resolved,
            starts_at: "2026-12-02T10:00:00Z".parse().unwrap(),
            ends_at: Some("2026-12-02T10:30:00Z".parse().unwrap()),
            envelope_id: "abc".into(),
            generation: None,
            transitions: vec!["2026-12-02T10:00:01Z".parse().unwrap()],
            sinks,
            held: Some(Held {
                id: "abc".into(),
                until: Some("2026-12-06T03:00:00Z".parse().unwrap()),
                envelope: "{}".into(),
            }),
        };
        let item = to_item("prod/fp1", &state, 3, 1_800_000_000);
        assert_eq!(item[HELD_SHARD].as_s().unwrap(), HELD_INDEX);
        assert_eq!(item[HELD_UNTIL].as_n().unwrap(), "1796526000");
        assert_eq!(item[KEY].as_s().unwrap(), "prod/fp1");
        let back = from_item(&item).unwrap();
        assert_eq!(back.state, state);
        assert_eq!(back.version, 3);
        assert_eq!(back.expires_at, 1_800_000_000);
    }

    #[test]
    fn an_item_this_code_did_not_write_is_refused_naming_the_attribute() {
        let mut item = to_item(
            "k",
            &AlertState {
                status: Status::Firing,
                starts_at: Timestamp::UNIX_EPOCH,
                ends_at: None,
                envelope_id: "x".into(),
                generation: None,
                transitions: vec![],
                sinks: BTreeMap::new(),
                held: None,
            },
            1,
            0,
        );
        assert!(!item.contains_key(HELD_SHARD), "the index is sparse");
        item.insert("status".into(), s("pending"));
        assert!(from_item(&item).unwrap_err().contains("status"));
        item.remove("status");
        assert_eq!(from_item(&item).unwrap_err(), "status is missing");
    }
}
