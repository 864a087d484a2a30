//! Settings of the cluster context and the events source: defaults, and
//! errors that name the flag and its environment variable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use alert_manager_agent::Cli;
use alert_manager_agent::config::KubernetesMode;
use alert_manager_agent::events::{DEFAULT_REASONS, OverflowPolicy};
use clap::Parser;

const BASE: &[&str] = &[
    "alert-manager-agent",
    "--topic-arn",
    "arn:aws:sns:us-east-1:123456789012:alerts",
    "--cluster",
    "prod",
];

fn parse(extra: &[&str]) -> Result<alert_manager_agent::ServeConfig, String> {
    let args: Vec<&str> = BASE.iter().chain(extra).copied().collect();
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    cli.serve.validate().map_err(|e| e.to_string())
}

#[test]
fn context_defaults_and_events_off() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.kubernetes, KubernetesMode::Auto);
    assert_eq!(c.context.team_annotation, "alert-manager.io/team");
    assert_eq!(c.context.team_label, "team");
    assert!(c.context.namespace_labels.is_empty());
    assert_eq!(c.context.pod_cache_ttl, Duration::from_secs(30));
    assert!(c.events.is_none());
    assert_eq!(c.max_concurrent_webhooks, 64);
}

#[test]
fn events_settings_with_defaults() {
    let c = parse(&[
        "--events",
        "--pod-name",
        "agent-0",
        "--namespace-labels",
        "env, cost-center",
    ])
    .unwrap();
    let e = c.events.unwrap();
    assert_eq!(e.identity, "agent-0");
    assert_eq!(e.filter.reasons, DEFAULT_REASONS);
    assert_eq!(e.filter.max_age, Duration::from_secs(300));
    assert_eq!(e.overflow, OverflowPolicy::DropOldest);
    assert_eq!(e.buffer_size, 1000);
    assert_eq!(e.lease_name, "alert-manager-agent-events");
    assert_eq!(e.lease_duration, Duration::from_secs(15));
    assert_eq!(c.context.namespace_labels, vec!["env", "cost-center"]);
}

#[test]
fn star_means_every_reason() {
    let c = parse(&["--events", "--pod-name", "a", "--event-reasons", "*"]).unwrap();
    assert!(c.events.unwrap().filter.reasons.is_empty());
}

#[test]
fn errors_name_the_flag_and_the_variable() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--events", "--pod-name", "a", "--kubernetes", "off"],
            "KUBERNETES_CONTEXT is off",
        ),
        (
            &["--events", "--pod-name", "a", "--event-buffer-size", "0"],
            "EVENT_BUFFER_SIZE must be at least 1",
        ),
        (
            &[
                "--events",
                "--pod-name",
                "a",
                "--event-rate-per-object",
                "0",
            ],
            "EVENT_RATE_PER_OBJECT",
        ),
        (
            &[
                "--events",
                "--pod-name",
                "a",
                "--lease-duration-seconds",
                "4",
            ],
            "LEASE_DURATION_SECONDS is 4; it must be at least 10",
        ),
        (
            &["--team-annotation", "", "--team-label", " "],
            "TEAM_ANNOTATION",
        ),
        (&["--event-overflow", "sometimes"], "drop-oldest"),
        (&["--kubernetes", "maybe"], "possible values: auto, off"),
        (
            &["--max-concurrent-webhooks", "0"],
            "--max-concurrent-webhooks / MAX_CONCURRENT_WEBHOOKS must be at least 1",
        ),
    ];
    for (extra, want) in cases {
        let err = parse(extra).unwrap_err();
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}
