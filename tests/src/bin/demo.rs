//! `make demo`: the whole pipeline on this machine, one alert through it,
//! step by step with timings, then its resolve, then a CloudWatch alarm on
//! the same instance. Everything runs on
//! 127.0.0.1 and stops on exit or Ctrl-C.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use alert_envelope::{Envelope, Status};
use alert_manager_tests::agent::receive_until;
use alert_manager_tests::pipeline::{POD, Pipeline, PipelineOptions, pod_alert};
use serde_json::json;

fn step(text: &str) {
    println!("  · {text}");
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        tokio::select! {
            code = demo() => code,
            _ = tokio::signal::ctrl_c() => {
                println!("\ninterrupted: stopping every process the demo started");
                ExitCode::from(130)
            }
        }
    })
    // Dropping the runtime drops the pipeline: every child is killed.
}

async fn demo() -> ExitCode {
    println!(
        "alert-manager demo: Alertmanager → agent → SNS → SQS → enricher Lambda → enriched topic\n"
    );
    println!("Starting (all on 127.0.0.1):");
    let options = PipelineOptions {
        state: true,
        ..PipelineOptions::default()
    };
    let p = Pipeline::start(options, &step).await;
    let sqs = p.sqs();

    println!("\nWarming up the path end to end with one alert (first connections, caches)...");
    let warm_started = Instant::now();
    p.fire(
        &json!([{"labels": {"alertname": "DemoWarmup", "severity": "info"},
                     "annotations": {"summary": "warm-up"}}]),
    )
    .await;
    let warm = receive_until(&sqs, &p.all_queue, Duration::from_secs(120), |g| {
        !g.is_empty()
    })
    .await;
    if warm.is_empty() {
        eprintln!(
            "the warm-up alert did not come through within 2 minutes; poller: {:?}",
            p.poller.stats()
        );
        return ExitCode::FAILURE;
    }
    let _ = receive_until(&sqs, &p.critical_queue, Duration::from_secs(1), |_| false).await;
    println!(
        "  · ready after {:.1} s",
        warm_started.elapsed().as_secs_f64()
    );

    println!("\nFiring KubePodCrashLooping (critical) about pod payments/{POD} into Alertmanager");
    let Some(firing) = journey(&p, &sqs, pod_alert("KubePodCrashLooping", "critical", None)).await
    else {
        return ExitCode::FAILURE;
    };
    println!("\nThe enriched envelope:");
    println!(
        "{}",
        serde_json::to_string_pretty(&firing).unwrap_or_default()
    );

    let filtered = receive_until(&sqs, &p.critical_queue, Duration::from_secs(10), |g| {
        !g.is_empty()
    })
    .await;
    println!(
        "\nA subscriber with filter policy {{\"team\":[\"payments\"],\"severity\":[\"critical\"]}} received:"
    );
    for (env, attrs) in &filtered {
        println!(
            "  {} {} {} attributes {:?}",
            env.id,
            env.alertname,
            env.status.as_str(),
            attrs
        );
    }
    if let Some(pd) = &p.pagerduty {
        let events = pd.events();
        println!(
            "PagerDuty stand-in: {} event(s), dedup_key {}",
            events.len(),
            events
                .first()
                .map(|e| e["dedup_key"].to_string())
                .unwrap_or_default()
        );
    }
    if let Some(slack) = &p.slack {
        println!(
            "Slack incoming-webhook stand-in: {} message(s)",
            slack.messages().len()
        );
    }
    slack_app_messages(&p, "posted", 0).await;
    if let Some(hook) = &p.webhook {
        println!(
            "Signed webhook stand-in: {} verified deliveries",
            hook.deliveries().len()
        );
    }

    println!("\nResolving it");
    let now = jiff::Timestamp::now().to_string();
    let Some(resolved) = journey(
        &p,
        &sqs,
        pod_alert("KubePodCrashLooping", "critical", Some(&now)),
    )
    .await
    else {
        return ExitCode::FAILURE;
    };
    println!(
        "  resolved envelope {} (same fingerprint {}), ends_at {}",
        resolved.id,
        resolved.fingerprint,
        resolved.ends_at.map(|t| t.to_string()).unwrap_or_default()
    );
    if let Some(pd) = &p.pagerduty {
        let resolve = pd
            .events()
            .into_iter()
            .find(|e| e["event_action"] == "resolve");
        println!(
            "  PagerDuty resolve with dedup_key {}",
            resolve
                .map(|e| e["dedup_key"].to_string())
                .unwrap_or_default()
        );
    }
    slack_app_messages(&p, "updated in place", 1).await;
    if !cloudwatch_alarm(&p, &sqs).await {
        return ExitCode::FAILURE;
    }
    println!("\nDone: every process the demo started is being stopped.");
    ExitCode::SUCCESS
}

/// CloudWatch's notification of an alarm on the seeded instance, as
/// CloudWatch publishes it to SNS (moto's `SetAlarmState` publishes
/// nothing, so the demo publishes CloudWatch's message itself), through the
/// enricher's queue, enriched and routed like the Prometheus alert.
async fn cloudwatch_alarm(p: &Pipeline, sqs: &aws_sdk_sqs::Client) -> bool {
    println!(
        "\nA CloudWatch alarm on instance {} ([critical] node-cpu-high, ALARM) through the alarms topic",
        p.instance_id
    );
    let topic = p.moto.create_topic("alert-manager-alarms").await;
    p.moto.subscribe_queue(&topic, "enricher-inbox", None).await;
    let message = include_str!("../../../envelope/fixtures/cloudwatch/alarm-single-metric.json")
        .replace("i-0123456789abcdef0", &p.instance_id);
    let sent = Instant::now();
    let published = aws_sdk_sns::Client::new(&p.config)
        .publish()
        .topic_arn(&topic)
        .message(message)
        .send()
        .await;
    if let Err(e) = published {
        eprintln!("publishing the alarm notification failed: {e}");
        return false;
    }
    let got = receive_until(sqs, &p.all_queue, Duration::from_secs(60), |g| {
        g.iter()
            .any(|(e, _)| e.source == alert_envelope::Source::CloudwatchAlarm)
    })
    .await;
    let Some((env, attrs)) = got
        .iter()
        .find(|(e, _)| e.source == alert_envelope::Source::CloudwatchAlarm)
    else {
        eprintln!("the alarm did not come through within 60 s");
        return false;
    };
    let enrichment = env.enrichment.clone().unwrap_or_default();
    println!(
        "  · enriched after {:.1} s: envelope {} source {} severity {} cluster {}",
        sent.elapsed().as_secs_f64(),
        env.id,
        attrs.get("source").map_or("?", String::as_str),
        env.severity.as_str(),
        env.cluster
    );
    println!(
        "  · instance {} ({}), team {}, routed to {:?}",
        enrichment
            .ec2
            .as_ref()
            .map_or("-", |e| e.instance_id.as_str()),
        enrichment
            .ec2
            .as_ref()
            .and_then(|e| e.instance_type.as_deref())
            .unwrap_or("-"),
        enrichment.team.as_deref().unwrap_or("-"),
        enrichment.routed_to
    );
    true
}

/// Prints the Slack app's messages (the Web API stand-in) once the one
/// about the demo alert was updated `updates` times, and its thread.
async fn slack_app_messages(p: &Pipeline, what: &str, updates: usize) {
    let Some(app) = &p.slack_app else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    let is_demo = |m: &alert_manager_tests::SlackApiMessage| {
        m.thread_ts.is_none()
            && m.body["text"]
                .as_str()
                .unwrap_or_default()
                .contains("KubePodCrashLooping")
    };
    while Instant::now() < deadline
        && !app
            .messages()
            .iter()
            .any(|m| is_demo(m) && m.updates >= updates)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = app.messages();
    let Some(top) = messages.iter().find(|m| is_demo(m)) else {
        println!("Slack app stand-in: no message about KubePodCrashLooping");
        return;
    };
    println!(
        "Slack app (chat.postMessage / chat.update, the state store keeps channel and ts): message ts {} in {} {what}, {} update(s), colour {}: {}",
        top.ts,
        top.channel,
        top.updates,
        top.body["attachments"][0]["color"]
            .as_str()
            .unwrap_or("none"),
        top.body["text"].as_str().unwrap_or_default(),
    );
    for reply in messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(top.ts.as_str()))
    {
        println!(
            "  thread reply ts {}: {}",
            reply.ts,
            reply.body["text"].as_str().unwrap_or_default()
        );
    }
}

/// Fires one alert and prints each hop with its time since firing, from the
/// timestamps SQS records (`SentTimestamp`) and the poller's own clock.
async fn journey(
    p: &Pipeline,
    sqs: &aws_sdk_sqs::Client,
    alert: serde_json::Value,
) -> Option<Envelope> {
    let want = if alert.get("endsAt").is_some() {
        Status::Resolved
    } else {
        Status::Firing
    };
    let name = alert["labels"]["alertname"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let handled_before = p.poller.stats().handled.len();
    let t0 = Instant::now();
    let t0_ms = jiff::Timestamp::now().as_millisecond();
    p.fire(&json!([alert])).await;
    let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    let since_ms = |ms: i64| (ms - t0_ms) as f64 / 1000.0;

    // The subscriber's copy, with the time SNS delivered it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(&p.all_queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
            )
            .message_attribute_names("All")
            .send()
            .await
            .ok()?;
        for m in out.messages() {
            let _ = sqs
                .delete_message()
                .queue_url(&p.all_queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await;
            let Ok(env) = Envelope::from_json(m.body().unwrap_or_default()) else {
                continue;
            };
            if env.status == want && env.alertname == name {
                let sent = m
                    .attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
                    })
                    .and_then(|t| t.parse::<i64>().ok());
                let team = m
                    .message_attributes()
                    .and_then(|a| a.get("team"))
                    .and_then(|v| v.string_value())
                    .unwrap_or("-")
                    .to_string();
                found = Some((env, sent, team));
            }
        }
    }
    let Some((env, sent, team)) = found else {
        eprintln!(
            "no enriched envelope arrived; poller: {:?}\nagent log:\n{}",
            p.poller.stats(),
            p.agent.log_text()
        );
        return None;
    };
    // The poller records a message just after deleting it.
    let mut handled = None;
    for _ in 0..60 {
        let stats = p.poller.stats();
        handled = stats.handled[handled_before.min(stats.handled.len())..]
            .iter()
            .find(|h| h.envelope_id.as_deref() == Some(env.id.as_str()))
            .cloned();
        if handled.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let k8s = env.kubernetes.as_ref();
    println!(
        "  0.00 s  Alertmanager notified (group_wait 1 s), agent adds kubernetes.team={} node={} aws.instance_id={}",
        k8s.and_then(|k| k.team.as_deref()).unwrap_or("-"),
        k8s.and_then(|k| k.node.as_deref()).unwrap_or("-"),
        env.aws
            .as_ref()
            .and_then(|a| a.instance_id.as_deref())
            .unwrap_or("-")
    );
    if let Some(h) = &handled {
        if let Some(ms) = h.sent_epoch_ms {
            println!(
                "  {:>4.2} s  agent answered 200: SNS raw topic accepted envelope {} and delivered it to the SQS inbox",
                since_ms(ms),
                env.id
            );
        }
        println!(
            "  {:>4.2} s  poller (the event source mapping) received it, receive #{}",
            since(h.received),
            h.receive_count
        );
        println!(
            "  {:>4.2} s  enricher Lambda returned after {} ms: EC2 tags, CloudWatch CPU, team, routing, delivery",
            since(h.done),
            h.done.saturating_duration_since(h.received).as_millis()
        );
    }
    if let Some(ms) = sent {
        println!(
            "  {:>4.2} s  enriched topic delivered it to the subscriber queue (attribute team={team})",
            since_ms(ms)
        );
    }
    Some(env)
}
