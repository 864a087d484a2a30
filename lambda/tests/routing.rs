//! The routing table: matchers, `continue`, the default route, invalid
//! documents with path-precise errors, and the `route` dry-run binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use alert_envelope::{Envelope, Status};
use alert_manager_enricher::routing::{Decision, Matcher, RoutingTable};
use jiff::Timestamp;

fn example() -> Envelope {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/enriched-envelope.json"
    ))
    .unwrap();
    Envelope::from_json(&text).unwrap()
}

fn example_routes() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/routes.yaml"
    ))
    .unwrap()
}

fn sinks(d: &Decision) -> Vec<&str> {
    d.sinks.iter().map(String::as_str).collect()
}

const SINKS: &str = r#"
sinks:
  a: {type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:a"}
  b: {type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:b"}
  c: {type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:c"}
"#;

fn table(routes: &str) -> RoutingTable {
    RoutingTable::parse(&format!("version: 1\n{SINKS}\n{routes}")).unwrap()
}

fn error(doc: &str) -> (String, String) {
    let e = RoutingTable::parse(doc).unwrap_err();
    (e.path, e.message)
}

#[test]
fn matcher_syntax() {
    assert!(Matcher::parse("critical").unwrap().matches("critical"));
    assert!(!Matcher::parse("critical").unwrap().matches("critical2"));
    assert!(Matcher::parse("!critical").unwrap().matches("warning"));
    assert!(!Matcher::parse("!critical").unwrap().matches("critical"));
    let re = Matcher::parse("~crit.*|warn").unwrap();
    assert!(re.matches("critical") && re.matches("warn"));
    assert!(!re.matches("a-critical"), "regexes match the whole value");
    let not_re = Matcher::parse("!~Watchdog|InfoInhibitor").unwrap();
    assert!(!not_re.matches("Watchdog") && not_re.matches("HighCpu"));
    assert!(Matcher::parse("=~literal").unwrap().matches("~literal"));
    assert!(
        Matcher::parse("").unwrap().matches(""),
        "empty matches a missing field"
    );
}

#[test]
fn first_match_wins_without_continue() {
    let t = table(
        r#"
routes:
  - {name: r1, match: {severity: critical}, sinks: [a]}
  - {name: r2, match: {alertname: "~HighCpu.*"}, sinks: [b]}
"#,
    );
    let d = t.route(&example());
    assert_eq!(d.routes, vec!["r1"]);
    assert_eq!(sinks(&d), vec!["a"]);
}

#[test]
fn continue_collects_sinks_of_later_routes_once() {
    let t = table(
        r#"
routes:
  - {name: r1, match: {severity: critical}, sinks: [a, b], continue: true}
  - {name: r2, match: {team: payments}, sinks: [b, c]}
  - {name: r3, sinks: [enriched]}
"#,
    );
    let d = t.route(&example());
    assert_eq!(d.routes, vec!["r1", "r2"]);
    assert_eq!(
        sinks(&d),
        vec!["a", "b", "c"],
        "r3 is not reached, b appears once"
    );
}

#[test]
fn no_match_takes_the_default_route() {
    let t = table(
        r#"
routes:
  - {match: {cluster: staging}, sinks: [a]}
"#,
    );
    let d = t.route(&example());
    assert!(d.routes.is_empty());
    assert_eq!(
        sinks(&d),
        vec!["enriched"],
        "the default default is the enriched topic"
    );
    let t = table("routes: []\ndefault: [c]");
    assert_eq!(sinks(&t.route(&example())), vec!["c"]);
    assert_eq!(
        sinks(&RoutingTable::enriched_only().route(&example())),
        vec!["enriched"]
    );
}

#[test]
fn every_field_kind_can_be_matched() {
    let env = example(); // prod, firing, critical, team payments via tag, m6i.large
    for (field, value) in [
        ("severity", "critical"),
        ("status", "firing"),
        ("cluster", "prod"),
        ("team", "payments"), // the Lambda's resolution, from the EC2 tag
        ("namespace", ""),    // no namespace anywhere: matches as empty
        ("alertname", "HighCpu0"),
        ("source", "alertmanager"),
        ("instance_type", "m6i.large"),
        ("instance_id", "i-ebdc2c8e9c2e7c2d8"),
        ("labels.severity", "critical"),
        ("labels.missing", ""),
        ("aws.availability_zone", "us-east-1a"),
        ("enrichment.ec2.tags.team", "payments"),
        (
            "enrichment.ec2.tags.aws:autoscaling:groupName",
            "eks-general-asg",
        ),
        ("enrichment.ec2.tags.eks:nodegroup-name", "general"),
    ] {
        let t = table(&format!(
            "routes:\n  - {{match: {{\"{field}\": \"={value}\"}}, sinks: [a]}}"
        ));
        assert_eq!(sinks(&t.route(&env)), vec!["a"], "{field} = {value:?}");
        let t = table(&format!(
            "routes:\n  - {{match: {{\"{field}\": \"!={value}\"}}, sinks: [a]}}"
        ));
        assert_eq!(
            sinks(&t.route(&env)),
            vec!["a"],
            "{field} != literal '={value}'"
        );
    }
    let mut resolved = env.clone();
    resolved.status = Status::Resolved;
    let t = table("routes:\n  - {match: {status: resolved, namespace: \"\"}, sinks: [b]}");
    assert_eq!(sinks(&t.route(&resolved)), vec!["b"]);
    assert_eq!(sinks(&t.route(&env)), vec!["enriched"]);
}

#[test]
fn invalid_documents_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("version: 2\n", "version", "understands 1"),
        (
            "version: 1\nroutes:\n  - {sinks: [nope]}\n",
            "routes[0].sinks[0]",
            "unknown sink \"nope\"",
        ),
        (
            "version: 1\nroutes:\n  - {sinks: []}\n",
            "routes[0].sinks",
            "at least one sink",
        ),
        (
            "version: 1\nroutes:\n  - {sinks: [enriched]}\n  - {sinks: [enriched]}\n  - {match: {severity: \"~(crit\"}, sinks: [enriched]}\n",
            "routes[2].match.severity",
            "invalid regex",
        ),
        (
            "version: 1\nroutes:\n  - {match: {sevrity: critical}, sinks: [enriched]}\n",
            "routes[0].match.sevrity",
            "unknown field",
        ),
        (
            "version: 1\nroutes:\n  - {sinks: [enriched], contnue: true}\n",
            "routes[0]",
            "unknown field `contnue`",
        ),
        ("version: 1\ndefault: [x]\n", "default[0]", "unknown sink"),
        (
            "version: 1\nsinks:\n  s: {type: sns, topic_arn: nope}\n",
            "sinks.s.topic_arn",
            "not an SNS topic ARN",
        ),
        (
            "version: 1\nsinks:\n  s: {type: slack, webhook_url: {}}\n",
            "sinks.s.webhook_url",
            "needs `secret",
        ),
        (
            "version: 1\nsinks:\n  s: {type: webhook, url: \"ftp://x\", hmac_key: {ssm: /k}}\n",
            "sinks.s.url",
            "scheme",
        ),
        (
            "version: 1\nsinks:\n  s: {type: pagerduty, routing_key: {secret: a, ssm: b}}\n",
            "sinks.s.routing_key",
            "not both",
        ),
        (
            "version: 1\nsinks:\n  s: {type: teams}\n",
            "sinks.s",
            "unknown variant `teams`",
        ),
        ("version: [1\n", "line", "did not find expected"),
        ("routes: []\n", ".", "missing field `version`"),
    ];
    for (doc, path, message) in cases {
        let (p, m) = error(doc);
        assert!(
            p.starts_with(path),
            "doc {doc:?}: path {p:?}, want {path:?} ({m})"
        );
        assert!(
            m.contains(message),
            "doc {doc:?}: message {m:?} lacks {message:?}"
        );
    }
}

#[test]
fn the_documented_example_is_valid_and_routes_as_its_comments_say() {
    let t = RoutingTable::parse(&example_routes()).unwrap();
    let env = example(); // team payments, resolved from the EC2 tag
    // A Wednesday, 11:00 in Berlin: no window mutes anything.
    let office: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    let d = t.route_at(&env, office);
    assert_eq!(d.muted, None);
    assert_eq!(
        d.routes,
        vec!["all-to-topic", "payments-critical", "payments-rest"]
    );
    assert_eq!(
        sinks(&d),
        vec![
            "enriched",
            "payments-pagerduty",
            "payments-slack",
            "payments-topic"
        ]
    );
    let mut watchdog = example();
    watchdog.alertname = "Watchdog".into();
    assert_eq!(sinks(&t.route_at(&watchdog, office)), vec!["enriched"]);
    let mut resolved = env.clone();
    resolved.status = Status::Resolved;
    assert_eq!(
        sinks(&t.route_at(&resolved, office)),
        vec![
            "enriched",
            "payments-pagerduty",
            "payments-slack",
            "payments-topic"
        ],
        "a critical resolve takes the critical route, storm and flap rules included"
    );
    assert_eq!(t.route_at(&resolved, office).noisy, d.noisy);
    assert!(!d.noisy.is_empty());

    // Sunday 03:00 in Berlin, the patch window: only the SNS sinks get it.
    let patching: Timestamp = "2026-12-06T02:00:00Z".parse().unwrap();
    let d = t.route_at(&env, patching);
    assert_eq!(sinks(&d), vec!["enriched", "payments-topic"]);
    let muted = d.muted.unwrap();
    assert_eq!(muted.sinks, vec!["payments-pagerduty", "payments-slack"]);
    assert_eq!(
        muted.reason,
        "route payments-critical: mute_time_intervals payments-patching"
    );
    assert_eq!(muted.until, Some("2026-12-06T03:00:00Z".parse().unwrap()));
    // Saturday noon: critical pages, the Slack of the rest is off hours but
    // payments-critical already gives payments-slack.
    let saturday: Timestamp = "2026-12-05T11:00:00Z".parse().unwrap();
    let d = t.route_at(&env, saturday);
    assert_eq!(d.muted, None);
    assert!(sinks(&d).contains(&"payments-pagerduty"));
    // A warning on Saturday: the office-hours route holds Slack back until Monday 08:00.
    let mut warning = env.clone();
    warning.severity = alert_envelope::Severity::Warning;
    let d = t.route_at(&warning, saturday);
    assert_eq!(sinks(&d), vec!["enriched", "payments-topic"]);
    let muted = d.muted.unwrap();
    assert_eq!(muted.sinks, vec!["payments-slack"]);
    assert_eq!(muted.until, Some("2026-12-07T07:00:00Z".parse().unwrap()));
}

#[test]
fn time_interval_names_and_fields_are_checked_at_load() {
    let (path, message) =
        error("version: 1\nroutes:\n  - {sinks: [enriched], mute_time_intervals: [nights]}\n");
    assert_eq!(path, "routes[0].mute_time_intervals[0]");
    assert!(message.contains("nights"), "{message}");
    let (path, _) = error(
        "version: 1\ntime_intervals:\n  - {name: a, time_intervals: []}\n  - {name: a, time_intervals: []}\n",
    );
    assert_eq!(path, "time_intervals[1].name");
    let (path, _) = error(
        "version: 1\ntime_intervals:\n  - {name: a, time_intervals: [{times: [{start_time: '18:00', end_time: '08:00'}]}]}\n",
    );
    assert_eq!(path, "time_intervals[0].time_intervals[0].times[0]");
    let (path, _) = error(
        "version: 1\ntime_intervals:\n  - {name: a, time_intervals: [{weekdays: [someday]}]}\nroutes:\n  - {sinks: [enriched], active_time_intervals: [a]}\n",
    );
    assert_eq!(path, "time_intervals[0].time_intervals[0].weekdays[0]");
    let (path, _) =
        error("version: 1\ntime_intervals:\n  - {name: a, time_intervals: [{hours: [1]}]}\n");
    assert!(
        path.starts_with("time_intervals[0].time_intervals[0]"),
        "{path}"
    );
}

#[test]
fn route_dry_run_prints_matches_and_sinks_and_exits_2_on_a_bad_document() {
    let bin = env!("CARGO_BIN_EXE_alert-manager-enricher");
    let dir = tempfile::tempdir().unwrap();
    let envelope = dir.path().join("env.json");
    let env = example();
    std::fs::write(&envelope, serde_json::to_vec(&env).unwrap()).unwrap();
    let routes = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/routes.yaml");
    let out = std::process::Command::new(bin)
        .args(["route", "--config", routes, "--envelope"])
        .arg(&envelope)
        .args(["--at", "2026-12-02T11:00:00+01:00"])
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("MATCH payments-critical (continue)"),
        "{text}"
    );
    assert!(text.contains("-     silence-watchdog"), "{text}");
    assert!(text.contains("payments-pagerduty (pagerduty)"), "{text}");
    assert!(
        text.contains("enriched (sns (ENRICHED_TOPIC_ARN))"),
        "{text}"
    );

    assert!(text.contains("not muted"), "{text}");
    assert!(
        text.contains("STORM rule of route payments-critical: past 20 firing alerts of group (alertname=HighCpu0, cluster=prod) within 5m, payments-pagerduty, payments-slack get one summary"),
        "{text}"
    );
    assert!(
        text.contains("FLAP rule of route payments-critical: after 4 status changes within 30m"),
        "{text}"
    );

    // In the patch window: muted, by what, until when, what is held back.
    let out = std::process::Command::new(bin)
        .args(["route", "--config", routes, "--envelope"])
        .arg(&envelope)
        .args(["--at", "2026-12-06T03:00:00+01:00"])
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MUTED by route payments-critical: mute_time_intervals payments-patching, until 2026-12-06T03:00:00Z; held back: payments-pagerduty, payments-slack"),
        "{text}"
    );
    let out = std::process::Command::new(bin)
        .args(["route", "--config", routes, "--envelope"])
        .arg(&envelope)
        .args(["--at", "next tuesday"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--at"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nroutes:\n  - {match: {severity: \"~(\"}, sinks: [enriched]}\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["route", "--config"])
        .arg(&bad)
        .arg("--envelope")
        .arg(&envelope)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("routes[0].match.severity"), "{err}");
}
