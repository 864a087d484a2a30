//! SNS rules: message attributes, subject, size, FIFO ids and batch planning.
//!
//! Every publisher (the agent, the Lambda) goes through these functions, so a
//! message that leaves this system always satisfies SNS's limits:
//! - body + attributes ≤ 262,144 bytes, and a PublishBatch ≤ 10 entries and
//!   262,144 bytes in total;
//! - ≤ 10 String attributes (a raw SQS subscription drops messages with more);
//! - subject ASCII, < 100 characters, no line breaks, never empty;
//! - FIFO group and deduplication ids ≤ 128 characters of the allowed set.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::Envelope;

/// SNS's maximum message size: body plus attributes.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// SNS's maximum PublishBatch payload: all entries together.
pub const MAX_BATCH_BYTES: usize = 262_144;
/// SNS's maximum entries per PublishBatch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// A raw SQS subscription drops messages with more attributes than this.
pub const MAX_ATTRIBUTES: usize = 10;
/// Longest attribute name SNS accepts.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 256;
/// Longest attribute value we send. SNS allows more, but filter policies and
/// the shared size budget are better served by short values.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 256;
/// Longest subject: SNS requires fewer than 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Longest FIFO `MessageGroupId` / `MessageDeduplicationId`.
pub const MAX_FIFO_ID_CHARS: usize = 128;
/// The data type of every attribute we send; it counts toward the message size.
pub const ATTRIBUTE_DATA_TYPE: &str = "String";
/// Appended to an annotation that was cut.
pub const TRUNCATION_MARKER: &str = " …[truncated by alert-manager]";

/// Message attributes, always valid for SNS: at most ten, String-typed, no empty
/// values, names and values within limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageAttributes {
    entries: BTreeMap<String, String>,
}

/// Why an attribute was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// The attribute name breaks SNS's naming rules.
    #[error(
        "invalid message attribute name {0:?}: use 1-256 of [A-Za-z0-9_.-], no leading/trailing/double dot, no AWS./Amazon. prefix"
    )]
    InvalidName(String),
    /// Ten attributes are already set.
    #[error("cannot add message attribute {0:?}: already at the limit of {MAX_ATTRIBUTES}")]
    Full(String),
}

impl MessageAttributes {
    /// The standard attributes of an envelope: cluster, status, severity,
    /// alertname, namespace, team, source. Empty values are left out.
    pub fn for_envelope(env: &Envelope) -> MessageAttributes {
        let mut attrs = MessageAttributes::default();
        let standard = [
            ("cluster", Some(env.cluster.as_str())),
            ("status", Some(env.status.as_str())),
            ("severity", Some(env.severity.as_str())),
            ("alertname", Some(env.alertname.as_str())),
            ("namespace", env.namespace()),
            ("team", env.team()),
            ("source", Some(env.source.as_str())),
        ];
        for (name, value) in standard {
            if let Some(value) = value {
                // Seven fixed, valid names: neither error can happen.
                let _ = attrs.insert(name, value);
            }
        }
        attrs
    }

    /// Sets an attribute. The value is cleaned (characters SQS rejects are
    /// dropped) and cut to [`MAX_ATTRIBUTE_VALUE_BYTES`]; an empty value is
    /// skipped, since SNS rejects it. Replacing an existing name never fails
    /// for lack of room.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), AttributeError> {
        if !valid_attribute_name(name) {
            return Err(AttributeError::InvalidName(name.to_string()));
        }
        let value = clean_attribute_value(value);
        if value.is_empty() {
            self.entries.remove(name);
            return Ok(());
        }
        if !self.entries.contains_key(name) && self.entries.len() >= MAX_ATTRIBUTES {
            return Err(AttributeError::Full(name.to_string()));
        }
        self.entries.insert(name.to_string(), value);
        Ok(())
    }

    /// The value of an attribute.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(String::as_str)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Name and value pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Bytes these attributes add to a message, as SNS counts them: name, data type and value.
    pub fn size_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(k, v)| k.len() + ATTRIBUTE_DATA_TYPE.len() + v.len())
            .sum()
    }
}

/// SNS attribute names: 1-256 of `[A-Za-z0-9_.-]`, no leading, trailing or
/// doubled dot, and not reserved (`AWS.`, `Amazon.`).
pub fn valid_attribute_name(name: &str) -> bool {
    let reserved = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !reserved("aws.")
        && !reserved("amazon.")
}

/// Keeps the characters SQS accepts in attribute values (the XML 1.0 set,
/// minus line breaks and tabs, which only hurt filter matching) and cuts to
/// the value limit at a character boundary.
fn clean_attribute_value(value: &str) -> String {
    let keep = |c: &char| !c.is_control() && !matches!(*c, '\u{FFFE}' | '\u{FFFF}');
    // The usual case has nothing to drop: no copy before the one returned.
    let cleaned: std::borrow::Cow<'_, str> = if value.chars().all(|c| keep(&c)) {
        value.into()
    } else {
        value.chars().filter(keep).collect::<String>().into()
    };
    truncate_at_char_boundary(cleaned.trim(), MAX_ATTRIBUTE_VALUE_BYTES).to_string()
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The SNS subject of an envelope, e.g. `[FIRING:critical] KubePodCrashLooping prod-eu/payments`.
///
/// ASCII only (other characters become `?`), no control characters, at most
/// [`MAX_SUBJECT_CHARS`], never empty.
pub fn subject(env: &Envelope) -> String {
    let mut raw = format!(
        "[{}:{}] {} {}",
        env.status.as_str().to_ascii_uppercase(),
        env.severity.as_str(),
        if env.alertname.is_empty() {
            "alert"
        } else {
            &env.alertname
        },
        env.cluster
    );
    if let Some(ns) = env.namespace() {
        raw.push('/');
        raw.push_str(ns);
    }
    sanitize_subject(&raw)
}

/// Makes any string a valid SNS subject.
pub fn sanitize_subject(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_SUBJECT_CHARS));
    let mut last_space = true;
    for c in raw.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else if c.is_ascii() {
            c
        } else {
            '?'
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
        if out.len() >= MAX_SUBJECT_CHARS {
            break;
        }
    }
    let out = out.trim_end().to_string();
    if out.is_empty() {
        "alert".to_string()
    } else {
        out
    }
}

/// An envelope that cannot be made to fit, even with every annotation cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "envelope {id} is {size} bytes (with its attributes or event fields) after cutting every annotation; an SNS message or EventBridge event holds {MAX_MESSAGE_BYTES}"
)]
pub struct TooLarge {
    /// Id of the envelope.
    pub id: String,
    /// Its smallest size.
    pub size: usize,
}

/// A serialized envelope that fits SNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FittedMessage {
    /// The JSON body.
    pub body: String,
    /// True when annotations were cut.
    pub truncated: bool,
}

/// Serializes `env` so that body + `attributes` fit in one SNS message.
///
/// When too big, the largest annotation is cut first, at a character
/// boundary, with [`TRUNCATION_MARKER`] appended; then the next largest, and
/// so on. `env.truncated` is set when anything was cut. The body is always
/// valid JSON that parses back into an `Envelope`.
pub fn fit_to_size(
    env: &mut Envelope,
    attributes: &MessageAttributes,
) -> Result<FittedMessage, TooLarge> {
    let limit = MAX_MESSAGE_BYTES.saturating_sub(attributes.size_bytes());
    fit_within(env, limit).map_err(|e| TooLarge {
        size: e.size + attributes.size_bytes(),
        ..e
    })
}

/// Like [`fit_to_size`], for a body of at most `limit` bytes (an
/// EventBridge event's `detail`, say).
pub fn fit_within(env: &mut Envelope, limit: usize) -> Result<FittedMessage, TooLarge> {
    let mut body = to_json(env);
    if body.len() <= limit {
        return Ok(FittedMessage {
            body,
            truncated: env.truncated,
        });
    }
    if !env.truncated {
        env.truncated = true;
        body = to_json(env);
    }
    loop {
        if body.len() <= limit {
            return Ok(FittedMessage {
                body,
                truncated: true,
            });
        }
        let excess = body.len() - limit;
        // The largest annotation that still has uncut text.
        let Some(value) = env
            .annotations
            .values_mut()
            .filter(|v| !uncut_part(v).is_empty())
            .max_by_key(|v| v.len())
        else {
            return Err(TooLarge {
                id: env.id.clone(),
                size: body.len(),
            });
        };
        // Removing k raw bytes shrinks the JSON by at least k (escapes only
        // grow it), so this cut removes at least `excess` plus room for the
        // marker. Text cut before is cut again from its kept prefix.
        let kept = uncut_part(value);
        let keep = kept.len().saturating_sub(excess + TRUNCATION_MARKER.len());
        let mut cut = truncate_at_char_boundary(kept, keep).to_string();
        cut.push_str(TRUNCATION_MARKER);
        // A value shorter than the marker is emptied instead: the envelope's
        // `truncated` flag still says something was cut.
        *value = if cut.len() < value.len() {
            cut
        } else {
            String::new()
        };
        body = to_json(env);
    }
}

/// The part of an annotation that was not cut yet.
fn uncut_part(value: &str) -> &str {
    value.strip_suffix(TRUNCATION_MARKER).unwrap_or(value)
}

fn to_json(env: &Envelope) -> String {
    // Serializing a struct of strings, maps and numbers cannot fail; f64 NaN
    // becomes null, which the reader accepts for optional values.
    serde_json::to_string(env).unwrap_or_default()
}

/// Whether a topic is FIFO (its ARN or name ends in `.fifo`).
pub fn is_fifo_topic(topic_arn: &str) -> bool {
    topic_arn.ends_with(".fifo")
}

/// FIFO `MessageGroupId`: one group per alert (cluster + fingerprint), so the
/// resolve of an alert is ordered after its firing while different alerts
/// flow in parallel.
pub fn fifo_group_id(env: &Envelope) -> String {
    let cluster = fifo_chars(&env.cluster);
    let fingerprint = fifo_chars(&env.fingerprint);
    let fingerprint = truncate_at_char_boundary(&fingerprint, 40);
    let room = MAX_FIFO_ID_CHARS - fingerprint.len() - 1;
    let cluster = truncate_at_char_boundary(&cluster, room);
    let id = format!("{cluster}:{fingerprint}");
    if id == ":" { "alert".to_string() } else { id }
}

/// FIFO `MessageDeduplicationId`: the envelope id, so a retried publish is
/// deduplicated while the resolve (a different id) is not.
pub fn fifo_deduplication_id(env: &Envelope) -> String {
    let id = fifo_chars(&env.id);
    let id = truncate_at_char_boundary(&id, MAX_FIFO_ID_CHARS);
    if id.is_empty() {
        crate::derive_id(
            &env.cluster,
            &env.fingerprint,
            env.status,
            env.starts_at,
            None,
        )
    } else {
        id.to_string()
    }
}

/// SNS FIFO ids allow alphanumerics and ASCII punctuation only.
fn fifo_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c.is_ascii_punctuation() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits messages of the given sizes (body + attributes each) into
/// PublishBatch calls of at most 10 entries and 262,144 bytes, in order.
pub fn plan_batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || (i > start && bytes + size > MAX_BATCH_BYTES);
        if full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}
