//! Fault tests of the whole pipeline, bounded in time, loopback only. Each
//! proves a reliability claim: nothing accepted is lost.
//!
//! The heavy one (2,000 alerts through an SNS outage and an agent crash) is
//! `#[ignore]`d in the plain test run and run by `make test-faults`, which
//! `make test` (and so CI) runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alert_envelope::Envelope;
use alert_manager_tests::Behavior;
use alert_manager_tests::agent::{AGENT_TOKEN, receive_until};
use alert_manager_tests::free_port;
use alert_manager_tests::pipeline::{Pipeline, PipelineOptions, STATE_TABLE, pod_alert};
use serde_json::{Value, json};

fn quiet(_: &str) {}

/// Items in the pipeline's alert state table.
async fn state_items(p: &Pipeline) -> usize {
    let client = aws_sdk_dynamodb::Client::new(&p.config);
    let mut pages = client
        .scan()
        .table_name(STATE_TABLE)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.unwrap().count as usize;
    }
    count
}

fn key(e: &Envelope) -> String {
    format!(
        "{}/{}",
        e.alertname,
        e.labels.get("replica").map(String::as_str).unwrap_or("")
    )
}

fn alerts(groups: usize, per_group: usize, prefix: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for g in 0..groups {
        for i in 0..per_group {
            out.push(json!({
                "labels": {"alertname": format!("{prefix}{g:02}"), "severity": "warning",
                           "namespace": "payments", "replica": format!("r-{i:03}")},
                "annotations": {"summary": format!("{prefix} {g}/{i}")}
            }));
        }
    }
    out
}

async fn metric(p: &Pipeline, line_prefix: &str) -> f64 {
    p.agent
        .metrics_text()
        .await
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// 2,000 alerts from Debian's Alertmanager through the whole pipeline (agent
/// → raw topic → SQS inbox → poller → enricher → enriched topic → final
/// queue), with SNS unreachable for the agent for 30 s mid-run (a TCP proxy
/// in front of moto refuses its connections, so moto keeps its state) and the
/// agent SIGKILLed and restarted during the outage, with the alert state
/// store on (every alert's state written, duplicates within the enricher
/// skipped).
///
/// The final queue is drained while the alerts flow, as a subscriber drains
/// it. Groups of 100 come every `PACE`, so the outage starts and ends with
/// alerts still firing. moto runs through `infra/local/moto_server.py`:
/// stock moto recounts a queue's messages for every message it sends or
/// hands out, and the backlog the outage releases would stall it for minutes.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "heavy (about a minute): run by `make test-faults`, which `make test` runs"]
async fn sns_outage_and_agent_crash_lose_nothing() {
    const GROUPS: usize = 20;
    const PACE: Duration = Duration::from_secs(2);
    const OUTAGE: Duration = Duration::from_secs(30);
    let options = PipelineOptions {
        sinks: false,
        agent_via_proxy: true,
        // Below Alertmanager's 10 s notify timeout, so a 503 reaches it before it gives up.
        agent_env: vec![("PUBLISH_DEADLINE_SECONDS".into(), "8".into())],
        state: true,
        ..PipelineOptions::default()
    };
    let mut p = Pipeline::start(options, &quiet).await;
    let all = alerts(GROUPS, 100, "Load");
    let want: BTreeSet<String> = all
        .iter()
        .map(|a| {
            format!(
                "{}/{}",
                a["labels"]["alertname"].as_str().unwrap(),
                a["labels"]["replica"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(want.len(), 2000);

    // The downstream subscriber, draining the final queue from the start.
    let wanted = want.len();
    let (sqs, final_queue) = (p.sqs(), p.all_queue.clone());
    let collector = tokio::spawn(async move {
        receive_until(&sqs, &final_queue, Duration::from_secs(420), |got| {
            got.iter()
                .map(|(e, _)| key(e))
                .collect::<BTreeSet<_>>()
                .len()
                >= wanted
        })
        .await
    });
    let started = Instant::now();
    let mut outage_started = None;
    let mut crashed = false;
    // SNS goes away after 4 groups, the agent is killed 8 groups later,
    // SNS is back 30 s after it went.
    for (i, chunk) in all.chunks(100).enumerate() {
        p.fire(&json!(chunk)).await;
        tokio::time::sleep(PACE).await;
        if i == 4 {
            p.proxy.as_ref().unwrap().set_up(false);
            outage_started = Some(Instant::now());
        }
        if i == 12 {
            p.agent.crash_and_restart().await;
            crashed = true;
        }
        if let Some(o) = outage_started
            && o.elapsed() >= OUTAGE
        {
            p.proxy.as_ref().unwrap().set_up(true);
        }
    }
    assert!(crashed);
    let outage = outage_started.unwrap();
    tokio::time::sleep(OUTAGE.saturating_sub(outage.elapsed())).await;
    p.proxy.as_ref().unwrap().set_up(true);
    let outage_len = outage.elapsed().min(OUTAGE);

    let mut got = collector.await.unwrap();
    // Late duplicates count too.
    got.extend(receive_until(&p.sqs(), &p.all_queue, Duration::from_secs(5), |_| false).await);
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (e, _) in &got {
        ids.entry(key(e)).or_default().insert(e.id.clone());
    }
    let arrived: BTreeSet<String> = ids.keys().cloned().collect();
    let lost: Vec<_> = want.difference(&arrived).collect();
    let duplicates = got.len() - arrived.len();
    let stats = p.poller.stats();
    let states = state_items(&p).await;
    println!(
        "2,000 alerts, SNS unreachable for the agent for {:.0} s, one agent SIGKILL, the state store on: {} reached the final queue after {:.0} s, {} lost, {duplicates} duplicates ({} enricher invocations, {} inbox messages handled, {states} alert states written)",
        outage_len.as_secs_f64(),
        arrived.len(),
        started.elapsed().as_secs_f64(),
        lost.len(),
        stats.invocations,
        stats.handled.len(),
    );
    assert!(
        lost.is_empty(),
        "lost {} alerts, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        ids.values().all(|s| s.len() == 1),
        "a duplicate carries a different id"
    );
    assert!(
        got.iter().all(|(e, _)| e.enrichment.is_some()),
        "every alert in the final queue went through the enricher"
    );
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(states, 2000, "one state per alert in the store");
    // The restarted agent lived through part of the outage: it failed to
    // publish (503 to Alertmanager), then published once SNS came back.
    let failures = metric(&p, "alert_manager_agent_publish_failures_total").await;
    assert!(failures > 0.0, "the outage reached the restarted agent");
    let published = metric(&p, "alert_manager_agent_alerts_published_total").await;
    assert!(published > 0.0, "the restarted agent published");
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_and_cloudwatch_down_still_deliver_every_alert_with_errors() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let options = PipelineOptions {
        sinks: false,
        lambda_env: vec![
            ("AWS_ENDPOINT_URL_EC2".into(), dead.clone()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH".into(), dead),
        ],
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(options, &quiet).await;
    let sqs = p.sqs();
    let mut batch = alerts(1, 19, "Degraded");
    batch.push(pod_alert("KubePodCrashLooping", "critical", None));
    p.fire(&json!(batch)).await;
    let got = receive_until(&sqs, &p.all_queue, Duration::from_secs(300), |g| {
        g.len() >= 20
    })
    .await;
    assert_eq!(got.len(), 20);
    let crash = got
        .iter()
        .find(|(e, _)| e.alertname == "KubePodCrashLooping")
        .unwrap();
    let errors = &crash.0.enrichment.as_ref().unwrap().errors;
    let stages: BTreeSet<_> = errors.iter().map(|e| e.stage.as_str()).collect();
    assert_eq!(stages, BTreeSet::from(["cloudwatch", "ec2"]), "{errors:?}");
    assert_eq!(
        crash.0.enrichment.as_ref().unwrap().team.as_deref(),
        Some("payments"),
        "the team still comes from the cluster"
    );
    let stats = p.poller.stats();
    assert!(
        stats.handled.iter().all(|h| !h.failed),
        "no batch item failed"
    );
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_sink_gets_its_alert_after_redelivery_and_a_dead_one_ends_in_the_dlq() {
    let options = PipelineOptions {
        visibility_timeout: 2,
        max_receive_count: 30,
        lambda_env: vec![("DELIVERY_DEADLINE_SECONDS".into(), "1".into())],
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(options, &quiet).await;
    let sqs = p.sqs();
    let webhook = p.webhook.as_ref().unwrap();

    // The webhook receiver answers 500 for 20 s.
    webhook.set_behavior(Behavior::Status(500));
    let down = Instant::now();
    p.fire(&json!([pod_alert("KubePodCrashLooping", "critical", None)]))
        .await;
    while down.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    webhook.set_behavior(Behavior::Ok);
    let deadline = Instant::now() + Duration::from_secs(30);
    while webhook.deliveries().is_empty() {
        assert!(
            Instant::now() < deadline,
            "never delivered after the receiver recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = p.poller.stats();
    let failures = stats.handled.iter().filter(|h| h.failed).count();
    let max_receive = stats
        .handled
        .iter()
        .map(|h| h.receive_count)
        .max()
        .unwrap_or(0);
    assert!(
        failures >= 3,
        "reported as batch item failures while down: {failures}"
    );
    assert!(
        max_receive >= 3,
        "redelivered after the visibility timeout: {max_receive}"
    );
    assert_eq!(webhook.deliveries().len(), 1);
    assert!(
        webhook
            .requests()
            .iter()
            .filter(|r| r.answered == 500)
            .count()
            >= 3
    );

    // A sink that never recovers: with maxReceiveCount reached, SQS moves
    // the message to the DLQ.
    aws_sdk_sqs::Client::new(&p.config)
        .set_queue_attributes()
        .queue_url(&p.inbox)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": queue_arn(&p, &p.dlq).await, "maxReceiveCount": 2})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    webhook.set_behavior(Behavior::Status(503));
    p.fire(&json!([pod_alert("NodeDiskFull", "critical", None)]))
        .await;
    let dead = receive_until(&sqs, &p.dlq, Duration::from_secs(60), |g| !g.is_empty()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.alertname, "NodeDiskFull");
}

async fn queue_arn(p: &Pipeline, url: &str) -> String {
    aws_sdk_sqs::Client::new(&p.config)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_web_identity_token_and_hostile_input_do_not_stop_real_alerts() {
    let options = PipelineOptions {
        sinks: false,
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(options, &quiet).await;
    let sqs = p.sqs();
    let real = alerts(5, 20, "Real");
    p.fire(&json!(real[..50])).await;

    // kubelet rotates the projected token: a new file is written and swapped in.
    let rotated = p.agent.web_identity.with_extension("new");
    std::fs::write(
        &rotated,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQiLCJyb3RhdGVkIjp0cnVlfQ.c2ln",
    )
    .unwrap();
    std::fs::rename(&rotated, &p.agent.web_identity).unwrap();

    // Hostile input straight at the agent's Service address while real traffic flows.
    let http = reqwest::Client::new();
    let hostile: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("no token", None, b"{}".to_vec(), 401),
        ("wrong token", Some("Bearer nope"), b"{}".to_vec(), 401),
        ("not JSON", Some("ct:text/plain"), b"hello".to_vec(), 415),
        (
            "truncated JSON",
            Some(""),
            br#"{"version":"4","alerts":["#.to_vec(),
            400,
        ),
        (
            "wrong shape",
            Some(""),
            br#"{"version":"4","alerts":[{"labels":"x"}]}"#.to_vec(),
            400,
        ),
        ("huge body", Some(""), vec![b' '; 2 * 1024 * 1024], 413),
    ];
    for (what, auth, body, want) in &hostile {
        let mut req = http.post(&p.agent.webhook).body(body.clone());
        match auth {
            None => req = req.header("content-type", "application/json"),
            Some(a) if a.starts_with("Bearer") => {
                req = req
                    .header("authorization", *a)
                    .header("content-type", "application/json")
            }
            Some(a) if a.starts_with("ct:") => {
                req = req
                    .bearer_auth(AGENT_TOKEN)
                    .header("content-type", a.trim_start_matches("ct:"))
            }
            Some(_) => {
                req = req
                    .bearer_auth(AGENT_TOKEN)
                    .header("content-type", "application/json")
            }
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(code, *want, "{what}: {body}");
        assert!(
            body["error"].is_string(),
            "{what}: a JSON error body: {body}"
        );
    }
    p.fire(&json!(real[50..])).await;

    let got = receive_until(&sqs, &p.all_queue, Duration::from_secs(300), |g| {
        g.iter().map(|(e, _)| key(e)).collect::<BTreeSet<_>>().len() >= 100
    })
    .await;
    let arrived: BTreeSet<_> = got.iter().map(|(e, _)| key(e)).collect();
    assert_eq!(arrived.len(), 100, "every real alert arrived");
    assert!(
        metric(
            &p,
            r#"alert_manager_agent_webhook_responses_total{code="200"}"#
        )
        .await
            >= 5.0
    );
}
