//! Property tests of the SNS rules: 12,000 generated cases per run in total.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;

use alert_envelope::sns::{self, MAX_MESSAGE_BYTES, MessageAttributes};
use alert_envelope::{Envelope, SCHEMA_V1, Severity, Source, Status, derive_id};
use jiff::Timestamp;
use proptest::prelude::*;

/// Strings that stress JSON escaping and UTF-8 boundaries.
fn nasty_unit() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "[\\x00-\\x1f\"\\\\]{1,4}",
        "[ü€𝄞漢]{1,4}",
        any::<String>(),
    ]
}

/// A value of up to ~400 KiB, built by repeating a short nasty unit (cheap to generate).
fn big_value() -> impl Strategy<Value = String> {
    (nasty_unit(), 0usize..40_000).prop_map(|(unit, n)| {
        let unit = if unit.is_empty() {
            "x".to_string()
        } else {
            unit
        };
        unit.repeat(n.max(1) * 10 / unit.len().max(1))
    })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_000_000_000, 0i32..1_000_000_000)
        .prop_map(|(s, n)| Timestamp::new(s, n).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        nasty_unit(),
        nasty_unit(),
        prop::collection::btree_map("[a-z_]{1,12}", nasty_unit(), 0..40),
        prop::collection::btree_map("[a-z_]{1,12}", big_value(), 0..6),
        0usize..3000,
        timestamp(),
        any::<bool>(),
    )
        .prop_map(
            |(cluster, alertname, mut labels, annotations, extra_labels, starts_at, firing)| {
                for i in 0..extra_labels {
                    labels.insert(format!("extra_{i}"), format!("value-{i}"));
                }
                let status = if firing {
                    Status::Firing
                } else {
                    Status::Resolved
                };
                Envelope {
                    schema: SCHEMA_V1.into(),
                    id: derive_id(&cluster, "fp", status, starts_at, None),
                    source: Source::Alertmanager,
                    cluster,
                    status,
                    alertname,
                    severity: Severity::Warning,
                    severity_raw: None,
                    fingerprint: "fp".into(),
                    group_key: None,
                    receiver: None,
                    starts_at,
                    ends_at: None,
                    generator_url: None,
                    external_url: None,
                    truncated_alerts: 0,
                    labels,
                    annotations,
                    kubernetes: None,
                    aws: None,
                    enrichment: None,
                    truncated: false,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn fit_to_size_never_exceeds_the_limit_nor_breaks_json(mut env in envelope()) {
        let attrs = MessageAttributes::for_envelope(&env);
        let original = env.clone();
        match sns::fit_to_size(&mut env, &attrs) {
            Ok(fitted) => {
                prop_assert!(fitted.body.len() + attrs.size_bytes() <= MAX_MESSAGE_BYTES);
                let back = Envelope::from_json(&fitted.body);
                prop_assert!(back.is_ok(), "{:?}", back.err());
                let back = back.unwrap_or_else(|_| unreachable!());
                prop_assert_eq!(&back, &env);
                prop_assert_eq!(fitted.truncated, back.truncated);
                // Only annotations may change; identity never does.
                prop_assert_eq!(&back.labels, &original.labels);
                prop_assert_eq!(&back.id, &original.id);
                if !fitted.truncated {
                    prop_assert_eq!(&back.annotations, &original.annotations);
                }
            }
            Err(e) => {
                // Only when even the annotation-free envelope is too big.
                let mut bare = original.clone();
                bare.annotations.values_mut().for_each(String::clear);
                bare.truncated = true;
                let size = serde_json::to_string(&bare).map(|s| s.len()).unwrap_or(0);
                prop_assert!(size + attrs.size_bytes() > MAX_MESSAGE_BYTES,
                    "gave up at {} although it fits without annotations", e.size);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    #[test]
    fn id_is_deterministic_and_status_sensitive(
        cluster in any::<String>(), fp in any::<String>(), ts in timestamp(), disc in proptest::option::of(any::<String>())
    ) {
        let a = derive_id(&cluster, &fp, Status::Firing, ts, disc.as_deref());
        let b = derive_id(&cluster, &fp, Status::Firing, ts, disc.as_deref());
        let r = derive_id(&cluster, &fp, Status::Resolved, ts, disc.as_deref());
        prop_assert_eq!(&a, &b);
        prop_assert_ne!(&a, &r);
        prop_assert_eq!(a.len(), 32);
        // Moving a character between parts changes the id (length-prefixed parts).
        if !cluster.is_empty() {
            let moved = derive_id(&cluster[..0], &format!("{cluster}{fp}"), Status::Firing, ts, disc.as_deref());
            prop_assert_ne!(&a, &moved);
        }
    }

    #[test]
    fn subject_is_always_valid(alertname in any::<String>(), cluster in any::<String>(), ns in any::<String>()) {
        let mut labels = BTreeMap::new();
        labels.insert("namespace".to_string(), ns);
        let env = Envelope {
            schema: SCHEMA_V1.into(), id: "x".into(), source: Source::KubernetesEvent, cluster,
            status: Status::Firing, alertname, severity: Severity::None, severity_raw: None,
            fingerprint: "fp".into(), group_key: None, receiver: None, starts_at: Timestamp::UNIX_EPOCH,
            ends_at: None, generator_url: None, external_url: None, truncated_alerts: 0, labels,
            annotations: BTreeMap::new(), kubernetes: None, aws: None, enrichment: None, truncated: false,
        };
        for s in [sns::subject(&env), sns::sanitize_subject(&env.alertname)] {
            prop_assert!(!s.is_empty());
            prop_assert!(s.len() <= 99, "{} chars", s.len());
            prop_assert!(s.is_ascii());
            prop_assert!(!s.chars().any(|c| c.is_control()), "{:?}", s);
        }
    }
}
