//! PagerDuty Events API v2: `trigger` when firing, `resolve` when resolved.
//!
//! The `dedup_key` is derived from cluster and fingerprint, so the resolve
//! closes the incident the trigger opened, and a retried record does not
//! open a second one.

use std::sync::Arc;
use std::time::Duration;

use alert_aws::{ConfigError, Failure};
use alert_envelope::{Envelope, Severity, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{HttpClient, post_json, validate_url};
use super::{secret, validate_secret};
use crate::secrets::{SecretRef, SecretStore};

/// The public Events API v2 endpoint.
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A PagerDuty sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Where the integration's routing key is stored (it is a secret).
    pub routing_key: SecretRef,
    /// Events API URL (default the public one; EU accounts use
    /// `https://events.eu.pagerduty.com/v2/enqueue`).
    #[serde(default = "default_url")]
    pub url: String,
    /// Test only: also accept an `http://` URL (the stand-ins on loopback).
    #[serde(default)]
    pub allow_http: bool,
}

fn default_url() -> String {
    EVENTS_URL.into()
}

impl PagerDutyConfig {
    /// Checks the secret reference and the URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_secret("routing_key", &self.routing_key)?;
        validate_url("url", &self.url, self.allow_http)
    }
}

/// A PagerDuty sink ready to send.
#[derive(Debug, Clone)]
pub struct PagerDutySink {
    config: PagerDutyConfig,
    http: HttpClient,
    secrets: Option<Arc<SecretStore>>,
}

impl PagerDutySink {
    /// A sink over the shared HTTP client and secret store.
    pub fn new(
        config: PagerDutyConfig,
        http: HttpClient,
        secrets: Option<Arc<SecretStore>>,
    ) -> PagerDutySink {
        PagerDutySink {
            config,
            http,
            secrets,
        }
    }

    /// One attempt; [`super::Sink::deliver`] runs it through the retry stage.
    pub async fn attempt(&self, env: &Envelope, timeout: Duration) -> Result<(), Failure> {
        self.send(|key| event(env, key), timeout).await
    }

    /// Sends the event `body(routing_key)` (an alert's, or a storm's).
    pub(super) async fn send(
        &self,
        body: impl FnOnce(&str) -> Value,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let key = secret(self.secrets.as_deref(), &self.config.routing_key, timeout).await?;
        let body = serde_json::to_vec(&body(key.expose()))
            .map_err(|e| Failure::permanent("encode", e.to_string()))?;
        post_json(self.http.get(), &self.config.url, &[], body, timeout).await
    }
}

/// `<cluster>/<fingerprint>`: the same for an alert's trigger and resolve.
pub fn dedup_key(env: &Envelope) -> String {
    let key = format!("{}/{}", env.cluster, env.fingerprint);
    if key.len() <= 255 {
        key
    } else {
        // Cluster names are short in practice; never exceed the API limit.
        key.chars().take(255).collect()
    }
}

/// PagerDuty's four severities.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
        Severity::None => "warning",
    }
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The Events API v2 body for one alert.
pub fn event(env: &Envelope, routing_key: &str) -> Value {
    if env.status == Status::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(env),
        });
    }
    let summary_text = env
        .annotations
        .get("summary")
        .or_else(|| env.annotations.get("description"))
        .cloned()
        .unwrap_or_default();
    let flapping = env.enrichment.as_ref().is_some_and(|e| e.flapping);
    let mut summary = format!(
        "{}[{}] {}",
        if flapping { "[flapping] " } else { "" },
        env.cluster,
        env.alertname
    );
    if let Some(ns) = env.namespace() {
        summary.push_str(&format!(" in {ns}"));
    }
    if !summary_text.is_empty() {
        summary.push_str(&format!(": {summary_text}"));
    }
    let source = env
        .aws
        .as_ref()
        .and_then(|a| a.instance_id.clone())
        .or_else(|| env.kubernetes.as_ref().and_then(|k| k.node.clone()))
        .or_else(|| env.labels.get("instance").cloned())
        .unwrap_or_else(|| env.cluster.clone());
    let component = env
        .kubernetes
        .as_ref()
        .and_then(|k| k.pod.clone())
        .or_else(|| env.labels.get("job").cloned());
    let mut payload = json!({
        "summary": cut(&summary, 1024),
        "source": source,
        "severity": severity(env.severity),
        "timestamp": env.starts_at.to_string(),
        "class": env.alertname,
        "custom_details": {
            "id": env.id,
            "team": env.team(),
            "labels": env.labels,
            "annotations": env.annotations,
            "kubernetes": env.kubernetes,
            "aws": env.aws,
            "enrichment": env.enrichment,
        },
    });
    if let Some(c) = component {
        payload["component"] = json!(c);
    }
    if let Some(g) = env.namespace() {
        payload["group"] = json!(g);
    }
    let mut links = Vec::new();
    if let Some(u) = &env.generator_url {
        links.push(json!({"href": u, "text": "Source expression"}));
    }
    if let Some(u) = env
        .enrichment
        .as_ref()
        .and_then(|e| e.cloudwatch.as_ref())
        .and_then(|c| c.console_url.as_ref())
    {
        links.push(json!({"href": u, "text": "CloudWatch"}));
    }
    if let Some(u) = env.annotations.get("runbook_url") {
        links.push(json!({"href": u, "text": "Runbook"}));
    }
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(env),
        "payload": payload,
        "client": "alert-manager",
    });
    if !links.is_empty() {
        body["links"] = json!(links);
    }
    if let Some(u) = &env.external_url {
        body["client_url"] = json!(u);
    }
    body
}
