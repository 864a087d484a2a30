//! No secret reaches the logs: every sink runs through success, retryable
//! and permanent failures, throttling and a hang, with every crate logging at
//! DEBUG and ours at TRACE into a capture installed as the global subscriber
//! (its own test binary, so every thread's events are seen).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alert_envelope::Status;
use alert_manager_tests::{Behavior, SlackApi};
use sinks_support::{
    HMAC_KEY, PD_KEY, ROUTES_PARAM, enricher_with_args, envelope, records, routes, stack,
};

const BOT_TOKEN: &str = "xoxb-9999-8888-secretbottokenvalue";

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_logs_while_every_sink_succeeds_and_fails() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug,alert_manager_enricher=trace,alert_aws=trace")
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = stack().await;
    // A Slack app sink too, with its bot token in Secrets Manager.
    let api = SlackApi::start(BOT_TOKEN, &[("C0123456789", "payments-alerts")]).await;
    aws_sdk_secretsmanager::Client::new(&s.config)
        .create_secret()
        .name("alert-manager/slack-bot")
        .secret_string(BOT_TOKEN)
        .send()
        .await
        .unwrap();
    let with_app = routes(&s)
        .replace(
            "sinks: [team-slack, team-pd, audit, team-topic]",
            "sinks: [team-slack, team-app, team-pd, audit, team-topic]",
        )
        .replace(
            "sinks:\n",
            "sinks:\n  team-app:\n    type: slack_app\n    bot_token: {secret: alert-manager/slack-bot}\n    channel: payments-alerts\n",
        );
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value(with_app)
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let e = enricher_with_args(
        &s,
        Duration::from_secs(60),
        aws_sdk_ec2::Client::new(&s.config),
        &["--slack-api-url", &api.url()],
    )
    .await;
    let alert = envelope("PaymentsDown", "payments", Status::Firing);
    let behaviours = [
        Behavior::Ok,
        Behavior::Status(500),
        Behavior::Status(400),
        Behavior::Status(403),
        Behavior::RateLimited {
            retry_after_secs: 1,
        },
        Behavior::Hang,
    ];
    for (i, b) in behaviours.into_iter().enumerate() {
        match i {
            1 => api.fail_next("internal_error"),
            2 => api.fail_next("invalid_auth"),
            4 => api.rate_limit_next(1),
            _ => {}
        }
        s.slack.set_behavior(b.clone());
        s.pagerduty.set_behavior(b.clone());
        s.webhook.set_behavior(b.clone());
        e.process(records(&[&alert]), Duration::from_secs(2)).await;
    }
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    s.slack.set_behavior(Behavior::Ok);
    s.pagerduty.set_behavior(Behavior::Ok);
    s.webhook.set_behavior(Behavior::Ok);
    e.process(records(&[&resolved]), Duration::from_secs(2))
        .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("aws_smithy_runtime") && logs.contains("hyper_util"),
        "the capture saw the SDK and HTTP client logs"
    );
    assert!(
        logs.contains("delivery failed retryably"),
        "failures were logged"
    );
    assert!(
        logs.contains("delivery refused"),
        "permanent failures were logged"
    );
    let slack_url = s.slack.url();
    let slack_path = slack_url.split_once("/services/").unwrap().1;
    assert!(
        api.calls().len() >= 4,
        "the Slack app sink ran: {:?}",
        api.calls()
    );
    for secret in [slack_url.as_str(), slack_path, PD_KEY, HMAC_KEY, BOT_TOKEN] {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} leaked into the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The HMAC over the body is not a secret, but the key never is printed in any form.
    assert!(!logs.contains(&hex_of(HMAC_KEY)));
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
