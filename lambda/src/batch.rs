//! Records in, unique envelopes and their owners out.
//!
//! A batch often carries one envelope twice (an SNS retry, a resend): it is
//! enriched and delivered once, and its outcome is reported for every
//! record that carried it.
//!
//! SQS FIFO: AWS requires a function that reports partial failures to stop
//! at the first failed record of a message group and report every later
//! record of that group as failed. Envelopes therefore carry their group and
//! their position in it (their *wave*): the handler delivers wave by wave,
//! and a group that failed takes no part in later waves.

use std::collections::HashMap;

use alert_envelope::Envelope;
use alert_envelope::alarm::{self, AlarmOptions, Reading};

use crate::config::InvalidRecordPolicy;
use crate::event::Record;

/// The envelopes of one invocation, each once.
#[derive(Debug, Default)]
pub struct Batch {
    /// Unique envelopes, in the order first seen.
    pub envelopes: Vec<Envelope>,
    /// For each envelope, the message ids of the records that carried it.
    pub owners: Vec<Vec<String>>,
    /// For each envelope, its FIFO group (`None` on standard queues and SNS).
    pub groups: Vec<Option<String>>,
    /// For each envelope, its position in its group (0 without a group).
    pub waves: Vec<usize>,
    /// Records reported as failed before any delivery (invalid, policy
    /// `fail`): message id, group, position, and why.
    pub refused: Vec<Refused>,
    /// Records whose envelope id repeated an earlier one.
    pub duplicates: u64,
    /// Records that were not valid envelopes.
    pub invalid: u64,
    /// CloudWatch alarm state changes that are no alert (`INSUFFICIENT_DATA`
    /// under `ALARM_INSUFFICIENT_DATA=ignore`).
    pub ignored: u64,
}

/// A record failed before delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// SQS message id.
    pub message_id: String,
    /// Its FIFO group.
    pub group: Option<String>,
    /// Its position in the group.
    pub wave: usize,
    /// Why.
    pub error: String,
}

impl Batch {
    /// Reads and dedupes `records` (envelopes, or CloudWatch alarm messages
    /// read as `alarms` says); `policy` says what an invalid one becomes.
    pub fn read(records: Vec<Record>, policy: InvalidRecordPolicy, alarms: AlarmOptions) -> Batch {
        let mut batch = Batch::default();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut next_in_group: HashMap<String, usize> = HashMap::new();
        for record in records {
            let wave = match &record.group {
                Some(g) => {
                    let n = next_in_group.entry(g.clone()).or_default();
                    *n += 1;
                    *n - 1
                }
                None => 0,
            };
            match envelope_of(&record, alarms) {
                Ok(None) => batch.ignored += 1,
                Ok(Some(env)) => {
                    if let Some(&i) = index_of.get(&env.id) {
                        batch.duplicates += 1;
                        batch.owners[i].push(record.message_id);
                        continue;
                    }
                    index_of.insert(env.id.clone(), batch.envelopes.len());
                    batch.envelopes.push(env);
                    batch.owners.push(vec![record.message_id]);
                    batch.groups.push(record.group);
                    batch.waves.push(wave);
                }
                Err(e) => {
                    batch.invalid += 1;
                    let fail = policy == InvalidRecordPolicy::Fail;
                    tracing::error!(message_id = %record.message_id, error = %e, reported_as_failure = fail, "record is not a valid envelope");
                    if fail {
                        batch.refused.push(Refused {
                            message_id: record.message_id,
                            group: record.group,
                            wave,
                            error: e,
                        });
                    }
                }
            }
        }
        batch
    }

    /// How many waves delivery takes: 1 without FIFO groups.
    pub fn wave_count(&self) -> usize {
        self.waves.iter().copied().max().map_or(0, |w| w + 1)
    }
}

/// The envelope a record carries: its JSON, or a CloudWatch alarm message
/// (SNS or EventBridge form) read into one. `Ok(None)`: an alarm state
/// that is no alert. The error says what is wrong, naming the field.
fn envelope_of(record: &Record, alarms: AlarmOptions) -> Result<Option<Envelope>, String> {
    let error = match Envelope::from_json(&record.body) {
        Ok(env) => return Ok(Some(env)),
        Err(e) => e,
    };
    let value: serde_json::Value = match serde_json::from_str(&record.body) {
        Ok(v) if alarm::is_alarm(&v) => v,
        _ => return Err(error.to_string()),
    };
    match alarm::read_alarm(&value, alarms) {
        Ok(Reading::Alert(env)) => Ok(Some(*env)),
        Ok(Reading::Ignored { alarm, state }) => {
            tracing::info!(message_id = %record.message_id, alarm = %alarm, state = %state, "CloudWatch alarm state ignored (ALARM_INSUFFICIENT_DATA=ignore)");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The first failed position of each FIFO group: nothing of the group at or
/// after it is delivered.
#[derive(Debug, Default)]
pub struct FailedGroups(HashMap<String, usize>);

impl FailedGroups {
    /// Records that `group` failed at position `wave`.
    pub fn fail(&mut self, group: Option<&str>, wave: usize) {
        if let Some(g) = group {
            let at = self.0.entry(g.to_string()).or_insert(wave);
            *at = (*at).min(wave);
        }
    }

    /// Whether an envelope of `group` at position `wave` must wait for a
    /// redelivery instead of being delivered now.
    pub fn blocks(&self, group: Option<&str>, wave: usize) -> bool {
        group
            .and_then(|g| self.0.get(g))
            .is_some_and(|&at| at < wave)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, body: &str, group: Option<&str>) -> Record {
        Record {
            message_id: id.into(),
            body: body.into(),
            group: group.map(str::to_string),
        }
    }

    fn envelope(id: &str) -> String {
        let mut env =
            Envelope::from_json(include_str!("../../docs/examples/enriched-envelope.json"))
                .unwrap();
        env.id = id.into();
        serde_json::to_string(&env).unwrap()
    }

    #[test]
    fn an_alarm_message_is_read_into_an_envelope_and_insufficient_data_is_ignored() {
        let alarm = include_str!("../../envelope/fixtures/cloudwatch/alarm-single-metric.json");
        let unknown = include_str!("../../envelope/fixtures/cloudwatch/insufficient-data.json");
        let broken = alarm.replace(
            "\"StateChangeTime\": \"2026",
            "\"StateChangeTime\": \"x2026",
        );
        let b = Batch::read(
            vec![
                record("m1", alarm, None),
                record("m2", unknown, None),
                record("m3", &broken, None),
            ],
            InvalidRecordPolicy::Fail,
            AlarmOptions::default(),
        );
        assert_eq!(b.envelopes.len(), 1);
        assert_eq!(
            b.envelopes[0].source,
            alert_envelope::Source::CloudwatchAlarm
        );
        assert_eq!((b.ignored, b.invalid), (1, 1));
        assert!(
            b.refused[0].error.contains("StateChangeTime"),
            "{:?}",
            b.refused
        );
    }

    #[test]
    fn a_repeated_envelope_is_kept_once_with_every_owner() {
        let b = Batch::read(
            vec![
                record("m1", &envelope("a"), None),
                record("m2", &envelope("b"), None),
                record("m3", &envelope("a"), None),
            ],
            InvalidRecordPolicy::Drop,
            AlarmOptions::default(),
        );
        assert_eq!(b.envelopes.len(), 2);
        assert_eq!(b.owners, vec![vec!["m1", "m3"], vec!["m2"]]);
        assert_eq!((b.duplicates, b.wave_count()), (1, 1));
    }

    #[test]
    fn fifo_records_get_their_position_in_their_group() {
        let b = Batch::read(
            vec![
                record("m1", &envelope("a1"), Some("A")),
                record("m2", &envelope("b1"), Some("B")),
                record("m3", "not json", Some("A")),
                record("m4", &envelope("a3"), Some("A")),
            ],
            InvalidRecordPolicy::Fail,
            AlarmOptions::default(),
        );
        assert_eq!(b.waves, vec![0, 0, 2]);
        assert_eq!(b.refused[0].wave, 1);
        assert_eq!(b.wave_count(), 3);
    }

    #[test]
    fn a_failed_group_blocks_only_its_later_records() {
        let mut f = FailedGroups::default();
        f.fail(Some("A"), 1);
        f.fail(None, 0);
        assert!(
            !f.blocks(Some("A"), 1),
            "the failed record itself was tried"
        );
        assert!(f.blocks(Some("A"), 2));
        assert!(!f.blocks(Some("B"), 5));
        assert!(!f.blocks(None, 5));
    }
}
