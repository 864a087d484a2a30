//! The real binaries together, as in AWS: Alertmanager → agent → SNS → SQS →
//! (event source mapping) → enricher under the Runtime API emulator → enriched
//! topic, subscribers and the Slack / PagerDuty / webhook sinks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeSet;
use std::time::Duration;

use alert_envelope::Status;
use alert_manager_tests::agent::receive_until;
use alert_manager_tests::pipeline::{PD_KEY, POD, Pipeline, PipelineOptions, pod_alert};
use serde_json::json;

fn quiet(_: &str) {}

#[tokio::test(flavor = "multi_thread")]
async fn firing_and_resolved_arrive_enriched_routed_and_filtered() {
    let p = Pipeline::start(PipelineOptions::default(), &quiet).await;
    let sqs = p.sqs();
    p.fire(&json!([
        pod_alert("KubePodCrashLooping", "critical", None),
        // Another team's warning: the filtered subscriber must not get it.
        {"labels": {"alertname": "DiskFilling", "severity": "warning", "namespace": "kube-system"},
         "annotations": {"summary": "disk 91% full"}}
    ]))
    .await;

    let got = receive_until(&sqs, &p.all_queue, Duration::from_secs(300), |g| {
        g.len() >= 2
    })
    .await;
    assert_eq!(got.len(), 2, "{got:?}\npoller: {:?}", p.poller.stats());
    let (crash, attrs) = got
        .iter()
        .find(|(e, _)| e.alertname == "KubePodCrashLooping")
        .unwrap();
    // Cluster context from the agent: pod → node → instance; team from the namespace annotation.
    assert_eq!(
        crash.aws.as_ref().unwrap().instance_id.as_deref(),
        Some(p.instance_id.as_str())
    );
    assert_eq!(
        crash.kubernetes.as_ref().unwrap().team.as_deref(),
        Some("payments")
    );
    assert_eq!(crash.kubernetes.as_ref().unwrap().pod.as_deref(), Some(POD));
    // Enrichment from the Lambda: EC2 tags and CloudWatch values.
    let enrichment = crash.enrichment.as_ref().unwrap();
    let ec2 = enrichment.ec2.as_ref().unwrap();
    assert_eq!(ec2.tags.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(ec2.instance_type.as_deref(), Some("m6i.large"));
    let cpu = enrichment
        .cloudwatch
        .as_ref()
        .unwrap()
        .metrics
        .iter()
        .find(|m| m.metric == "CPUUtilization" && m.stat == "Maximum")
        .unwrap();
    assert_eq!(cpu.max, Some(97.0));
    assert!(enrichment.errors.is_empty(), "{:?}", enrichment.errors);
    assert_eq!(enrichment.team.as_deref(), Some("payments"));
    assert_eq!(attrs.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        attrs.get("instance_type").map(String::as_str),
        Some("m6i.large")
    );
    let disk = got
        .iter()
        .find(|(e, _)| e.alertname == "DiskFilling")
        .unwrap();
    // No machine: only the agent's account.
    let aws = disk.0.aws.clone().unwrap_or_default();
    assert_eq!(aws.instance_id, None);
    assert_eq!(
        aws.account_id.as_deref(),
        Some(alert_manager_tests::ACCOUNT_ID)
    );
    assert_eq!(
        disk.0.enrichment.as_ref().unwrap().team.as_deref(),
        Some("unassigned")
    );

    // The filter policy (team=payments, severity=critical) takes exactly the crash.
    let filtered = receive_until(&sqs, &p.critical_queue, Duration::from_secs(10), |g| {
        !g.is_empty()
    })
    .await;
    let extra = receive_until(&sqs, &p.critical_queue, Duration::from_secs(2), |_| false).await;
    let names: Vec<_> = filtered
        .iter()
        .chain(&extra)
        .map(|(e, _)| e.alertname.clone())
        .collect();
    assert_eq!(names, vec!["KubePodCrashLooping"]);

    // Sinks got their payloads.
    let slack = p
        .slack
        .as_ref()
        .unwrap()
        .wait_for(1, Duration::from_secs(10))
        .await;
    assert_eq!(slack[0].answered, 200, "{}", slack[0]);
    let hook = p
        .webhook
        .as_ref()
        .unwrap()
        .wait_for(1, Duration::from_secs(10))
        .await;
    assert_eq!(hook[0].answered, 200, "signature verified: {}", hook[0]);
    assert_eq!(hook[0].header("X-Alert-Id"), Some(crash.id.as_str()));
    let pd = p
        .pagerduty
        .as_ref()
        .unwrap()
        .wait_for(1, Duration::from_secs(10))
        .await;
    let trigger = pd[0].json.clone().unwrap();
    assert_eq!(pd[0].answered, 202, "{}", pd[0]);
    assert_eq!(trigger["routing_key"], PD_KEY);
    assert_eq!(trigger["event_action"], "trigger");

    // Resolve it: the resolved envelope arrives, and PagerDuty gets a resolve
    // with the trigger's dedup_key.
    let now = jiff::Timestamp::now().to_string();
    p.fire(&json!([pod_alert(
        "KubePodCrashLooping",
        "critical",
        Some(&now)
    )]))
    .await;
    let got = receive_until(&sqs, &p.all_queue, Duration::from_secs(60), |g| {
        g.iter().any(|(e, _)| e.status == Status::Resolved)
    })
    .await;
    let resolved = got
        .iter()
        .find(|(e, _)| e.status == Status::Resolved)
        .unwrap();
    assert_eq!(resolved.0.fingerprint, crash.fingerprint);
    assert_ne!(resolved.0.id, crash.id);
    let pd = p
        .pagerduty
        .as_ref()
        .unwrap()
        .wait_for(2, Duration::from_secs(10))
        .await;
    let resolve = pd
        .iter()
        .filter_map(|r| r.json.clone())
        .find(|j| j["event_action"] == "resolve")
        .unwrap();
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert!(
        p.poller.stats().errors.is_empty(),
        "{:?}",
        p.poller.stats().errors
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_of_fifty_fans_out_to_fifty_envelopes_and_max_alerts_is_recorded() {
    let options = PipelineOptions {
        sinks: false,
        max_alerts: 40,
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(options, &quiet).await;
    let sqs = p.sqs();
    let group = |name: &str, cut: bool| -> Vec<serde_json::Value> {
        (0..50)
            .map(|i| {
                let mut labels = json!({"alertname": name, "severity": "warning",
                                        "namespace": "payments", "replica": format!("r-{i:02}")});
                if cut {
                    labels["cut"] = json!("true");
                }
                json!({"labels": labels, "annotations": {"summary": format!("replica {i} down")}})
            })
            .collect()
    };
    let mut alerts = group("ReplicaDown", false);
    alerts.extend(group("ReplicaDownCut", true));
    p.fire(&json!(alerts)).await;
    let got = receive_until(&sqs, &p.all_queue, Duration::from_secs(300), |g| {
        g.len() >= 90
    })
    .await;
    let extra = receive_until(&sqs, &p.all_queue, Duration::from_secs(3), |_| false).await;
    let all: Vec<_> = got.iter().chain(&extra).map(|(e, _)| e).collect();
    let whole: Vec<_> = all
        .iter()
        .filter(|e| e.alertname == "ReplicaDown")
        .collect();
    let cut: Vec<_> = all
        .iter()
        .filter(|e| e.alertname == "ReplicaDownCut")
        .collect();

    assert_eq!(whole.len(), 50, "one group of 50 → 50 envelopes");
    let ids: BTreeSet<_> = whole.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 50, "with distinct ids");
    assert!(
        whole.iter().all(|e| e.group_key == whole[0].group_key),
        "from one group"
    );
    assert!(whole.iter().all(|e| e.truncated_alerts == 0));

    assert_eq!(cut.len(), 40, "max_alerts 40 cut the group of 50");
    assert!(
        cut.iter().all(|e| e.truncated_alerts == 10),
        "truncatedAlerts recorded"
    );
}
