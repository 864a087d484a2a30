#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::routing::StormDocument;
use alert_envelope::{Source, Status};

fn rule(threshold: u32) -> StormRule {
    StormDocument {
        threshold,
        window: "2m".into(),
        group_by: vec!["cluster".into()],
        update_interval: "10s".into(),
    }
    .compile("routes[0]", 1)
    .unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_796_000_000 + secs).unwrap()
}

fn env(fp: &str, status: Status) -> Envelope {
    let mut e = Envelope::new(
        Source::Alertmanager,
        "prod",
        status,
        fp.into(),
        t(0),
        Default::default(),
    );
    e.alertname = "PodDown".into();
    if status == Status::Resolved {
        e.ends_at = Some(t(1));
    }
    e
}

fn people() -> Vec<String> {
    vec!["slack".into(), "pd".into()]
}

/// A group of `n` firing alerts, arrived at 0 s.
fn stormed(n: usize, rule: &StormRule) -> StormState {
    let mut s = StormState::new("r", BTreeMap::new());
    for i in 0..n {
        s.arrive(
            &format!("prod/{i}"),
            &env(&i.to_string(), Status::Firing),
            rule,
            t(0),
        );
    }
    s
}

#[test]
fn the_alert_after_the_threshold_begins_the_storm_and_the_ones_before_go_alone() {
    let r = rule(3);
    let mut s = StormState::new("r", BTreeMap::new());
    let absorbed: Vec<bool> = (0..5)
        .map(|i| {
            s.arrive(
                &format!("prod/{i}"),
                &env(&i.to_string(), Status::Firing),
                &r,
                t(i),
            )
            .absorbed
        })
        .collect();
    assert_eq!(absorbed, [false, false, false, true, true]);
    assert_eq!(s.since, Some(t(3)));
    assert_eq!(s.counts(), (5, 0));
    assert_eq!(s.first.len(), 2, "the absorbed ones are listed");
    // A resolve of one sent alone goes alone; of an absorbed one, into the summary.
    assert!(
        !s.arrive("prod/0", &env("0", Status::Resolved), &r, t(6))
            .absorbed
    );
    assert!(
        s.arrive("prod/4", &env("4", Status::Resolved), &r, t(6))
            .absorbed
    );
    assert_eq!(s.counts(), (3, 2));
}

#[test]
fn alerts_outside_the_window_do_not_count_towards_the_threshold() {
    let r = rule(2);
    let mut s = StormState::new("r", BTreeMap::new());
    assert!(
        !s.arrive("prod/a", &env("a", Status::Firing), &r, t(0))
            .absorbed
    );
    assert!(
        !s.arrive("prod/b", &env("b", Status::Firing), &r, t(10))
            .absorbed
    );
    // 3 minutes later: a and b are outside the 2-minute window.
    assert!(
        !s.arrive("prod/c", &env("c", Status::Firing), &r, t(190))
            .absorbed
    );
    assert!(
        !s.arrive("prod/d", &env("d", Status::Firing), &r, t(191))
            .absorbed
    );
    assert!(
        s.arrive("prod/e", &env("e", Status::Firing), &r, t(192))
            .absorbed
    );
    // The same alert again is one alert, not two.
    let mut s = StormState::new("r", BTreeMap::new());
    for _ in 0..5 {
        assert!(
            !s.arrive("prod/a", &env("a", Status::Firing), &r, t(0))
                .absorbed
        );
    }
}

#[test]
fn updates_are_at_most_one_per_interval_and_coalesce_what_arrived_between() {
    let r = rule(1);
    let mut s = stormed(3, &r);
    let due = s.due(&r, &people(), t(0));
    assert_eq!(due.len(), 2, "the first summary goes at once: {due:?}");
    for (sink, _) in &due {
        s.claim(sink, t(0));
    }
    assert!(s.due(&r, &people(), t(1)).is_empty(), "nothing new");
    for i in 3..50 {
        s.arrive(
            &format!("prod/{i}"),
            &env(&i.to_string(), Status::Firing),
            &r,
            t(2),
        );
    }
    assert!(s.due(&r, &people(), t(9)).is_empty(), "rate-limited");
    assert_eq!(s.next_turn(&r), Some(t(10)), "the tick's next look");
    assert_eq!(
        s.due(&r, &people(), t(10)),
        vec![
            ("slack".to_string(), Update::Open),
            ("pd".to_string(), Update::Open)
        ]
    );
    // A failed update is pending again.
    s.claim("slack", t(10));
    s.receipt("slack", Err(()));
    assert!(s.sinks["slack"].pending);
}

#[test]
fn the_storm_closes_when_all_resolve_or_after_a_quiet_window() {
    let r = rule(1);
    let mut s = stormed(3, &r);
    assert_eq!(s.closing(&r, t(60)), None);
    for i in 0..3 {
        s.arrive(
            &format!("prod/{i}"),
            &env(&i.to_string(), Status::Resolved),
            &r,
            t(61),
        );
    }
    assert_eq!(
        s.closing(&r, t(61)).as_deref(),
        Some("every alert resolved")
    );
    assert!(
        s.due(&r, &people(), t(61))
            .iter()
            .all(|(_, u)| *u == Update::Close)
    );

    let mut quiet = stormed(3, &r);
    assert_eq!(quiet.closing(&r, t(119)), None);
    assert_eq!(
        quiet.closing(&r, t(120)).as_deref(),
        Some("no alert for 2m")
    );
    for sink in people() {
        quiet.receipt(
            &sink,
            Ok(SummaryRecord {
                closed: true,
                ..Default::default()
            }),
        );
    }
    quiet.settle(&people(), Some("no alert for 2m".into()), t(120));
    assert_eq!(quiet.closed_at, Some(t(120)));
    assert_eq!(quiet.next_turn(&r), None);
    // The next alert after the close starts counting anew.
    assert!(
        !quiet
            .arrive("prod/x", &env("x", Status::Firing), &r, t(300))
            .absorbed
    );
    assert_eq!(quiet.since, None);
    assert!(quiet.sinks.is_empty());
}

#[test]
fn replaying_an_arrival_on_a_newer_item_keeps_the_later_state_of_each_alert() {
    let r = rule(1);
    let mut theirs = stormed(3, &r);
    theirs.arrive("prod/1", &env("1", Status::Resolved), &r, t(5));
    let mut mine = stormed(3, &r);
    let late = mine.arrive("prod/1", &env("1", Status::Firing), &r, t(6));
    theirs.apply(&late);
    assert!(
        !theirs.members["prod/1"].firing,
        "the resolve is later in the alert's life"
    );
    assert_eq!(theirs.last_arrival, Some(t(6)));
}

#[test]
fn a_group_beyond_its_members_limit_is_counted_and_a_long_key_is_hashed() {
    let r = rule(1);
    let s = stormed(MAX_MEMBERS + 5, &r);
    assert_eq!(s.members.len(), MAX_MEMBERS);
    assert_eq!(s.counts(), (MAX_MEMBERS as u64 + 5, 0));
    assert_eq!(
        s.closing(&r, t(1)),
        None,
        "untracked ones are not known resolved"
    );

    let group = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
    assert_eq!(storm_key("pods", &group), "#storm/pods/prod");
    let long = BTreeMap::from([("labels.x".to_string(), "v".repeat(600))]);
    let key = storm_key("pods", &long);
    assert!(key.starts_with("#storm/pods/") && key.len() < 300, "{key}");
    assert_eq!(humantime(Duration::from_secs(330)), "5m 30s");
}
