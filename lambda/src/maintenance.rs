//! Per-instance maintenance: an EC2 tag (`MAINTENANCE_TAG`, by default
//! `alert-manager.io/maintenance-until`) holding an RFC 3339 time mutes the
//! alerts about that instance, for people's sinks, until then. Whoever
//! drains or patches a node tags it; nothing has to be deployed.

use alert_envelope::{Envelope, Muted};
use jiff::Timestamp;

use crate::routing::{Decision, Mutes, RoutingTable};

/// The tag's default name.
pub const DEFAULT_TAG: &str = "alert-manager.io/maintenance-until";

/// When the instance behind `env` is in maintenance at `at`: until when.
/// `Err` names a tag value that is not an RFC 3339 time.
pub fn until(env: &Envelope, tag: &str, at: Timestamp) -> Result<Option<Timestamp>, String> {
    if tag.is_empty() {
        return Ok(None);
    }
    let Some(ec2) = env.enrichment.as_ref().and_then(|e| e.ec2.as_ref()) else {
        return Ok(None);
    };
    let Some(value) = ec2.tags.get(tag) else {
        return Ok(None);
    };
    let end: Timestamp = value.trim().parse().map_err(|e| {
        format!(
            "instance {}: tag {tag} = {value:?} is not an RFC 3339 time such as 2026-12-24T18:00:00Z ({e}); not muted",
            ec2.instance_id
        )
    })?;
    Ok((end > at).then_some(end))
}

/// Where `env` goes at `at`: its routes' decision (with their `mutes` at
/// `at`, [`RoutingTable::mutes_at`]), with every people's sink held back
/// while its instance is in maintenance. A bad tag value is logged and
/// recorded in `enrichment.errors`, and mutes nothing.
pub fn route(
    table: &RoutingTable,
    mutes: &Mutes,
    env: &mut Envelope,
    tag: &str,
    at: Timestamp,
) -> Decision {
    let mut decision = table.route_with(env, mutes);
    match until(env, tag, at) {
        Ok(Some(end)) => apply(table, &mut decision, env, tag, end),
        Ok(None) => {}
        Err(message) => {
            tracing::warn!(id = %env.id, "{message}");
            env.enrichment
                .get_or_insert_with(Default::default)
                .errors
                .push(alert_envelope::EnrichmentError {
                    stage: "maintenance".into(),
                    message,
                });
        }
    }
    decision
}

/// Holds every people's sink of `decision` back while the instance is in
/// maintenance; the instance's mute replaces a route's.
fn apply(table: &RoutingTable, decision: &mut Decision, env: &Envelope, tag: &str, end: Timestamp) {
    let instance = env
        .enrichment
        .as_ref()
        .and_then(|e| e.ec2.as_ref())
        .map_or("", |e| e.instance_id.as_str());
    let (machines, people): (Vec<String>, Vec<String>) =
        decision.sinks.drain(..).partition(|s| table.is_machines(s));
    decision.sinks = machines;
    let mut held = decision.muted.take().map(|m| m.sinks).unwrap_or_default();
    held.extend(people);
    if held.is_empty() {
        return;
    }
    // Nothing reaches people now, so no storm or flap rule counts it.
    decision.noisy.clear();
    decision.muted = Some(Muted {
        reason: format!("instance {instance}: {tag} {end}"),
        until: Some(end),
        sinks: held,
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use alert_envelope::{Ec2Enrichment, Source, Status};

    fn env(tag_value: Option<&str>) -> Envelope {
        let mut e = Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Firing,
            "fp".into(),
            "2026-12-02T10:00:00Z".parse().unwrap(),
            Default::default(),
        );
        let mut ec2 = Ec2Enrichment {
            instance_id: "i-0abc".into(),
            ..Default::default()
        };
        if let Some(v) = tag_value {
            ec2.tags.insert(DEFAULT_TAG.into(), v.into());
        }
        e.enrichment.get_or_insert_with(Default::default).ec2 = Some(ec2);
        e
    }

    #[test]
    fn the_tag_mutes_until_its_time_and_not_after() {
        let at: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let e = env(Some("2026-12-02T14:00:00Z"));
        assert_eq!(
            until(&e, DEFAULT_TAG, at),
            Ok(Some("2026-12-02T14:00:00Z".parse().unwrap()))
        );
        let past = env(Some("2026-12-02T11:59:59Z"));
        assert_eq!(until(&past, DEFAULT_TAG, at), Ok(None));
        assert_eq!(until(&env(None), DEFAULT_TAG, at), Ok(None));
        assert_eq!(until(&e, "", at), Ok(None), "an empty setting turns it off");
        let offset = env(Some("2026-12-02T15:00:00+02:00"));
        assert_eq!(
            until(&offset, DEFAULT_TAG, at),
            Ok(Some("2026-12-02T13:00:00Z".parse().unwrap()))
        );
    }

    #[test]
    fn a_bad_tag_value_is_named_and_mutes_nothing() {
        let at: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let e = until(&env(Some("tomorrow")), DEFAULT_TAG, at).unwrap_err();
        assert!(
            e.contains("i-0abc") && e.contains("tomorrow") && e.contains(DEFAULT_TAG),
            "{e}"
        );
    }

    #[test]
    fn maintenance_holds_people_s_sinks_and_keeps_sns() {
        let table = RoutingTable::parse(
            "version: 1\nsinks:\n  pd: {type: pagerduty, routing_key: {secret: k}}\n  t: {type: sns, topic_arn: 'arn:aws:sns:us-east-1:123456789012:t'}\nroutes:\n  - {sinks: [enriched, pd, t]}\n",
        )
        .unwrap();
        let e = env(Some("2026-12-02T14:00:00Z"));
        let mut d = table.route_at(&e, "2026-12-02T12:00:00Z".parse().unwrap());
        apply(
            &table,
            &mut d,
            &e,
            DEFAULT_TAG,
            "2026-12-02T14:00:00Z".parse().unwrap(),
        );
        assert_eq!(d.sinks, vec!["enriched", "t"]);
        let m = d.muted.unwrap();
        assert_eq!(m.sinks, vec!["pd"]);
        assert!(m.reason.contains("i-0abc"), "{}", m.reason);
    }
}
