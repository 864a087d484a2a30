//! `alert-manager-agent`: receives Alertmanager webhooks in the cluster and
//! publishes one envelope per alert to SNS.
//!
//! The one promise: a 2xx answer means SNS accepted every alert of the
//! notification. Anything else is a 5xx (Alertmanager retries; envelope ids
//! are deterministic, so a retry is deduplicated downstream) or a 4xx with a
//! JSON body naming what is wrong with the input.

pub mod account;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod recent;
pub mod server;
mod sns;
pub mod telemetry;
pub mod whoami;

pub use alert_aws::SnsPublisher;
pub use config::{Cli, Command, ServeConfig};
pub use error::Error;

use std::sync::Arc;
use std::time::Duration;

/// How long the events publisher retries one batch before buffering it again.
const EVENT_PUBLISH_DEADLINE: Duration = Duration::from_secs(60);

/// The AWS config from the default chain (IRSA, Pod Identity), shared with
/// the enricher: SDK retries off (the publisher is the one retry stage), and
/// a timeout on each call.
pub use alert_aws::sdk::sdk_config as aws_config;

/// Serves the webhook and metrics until SIGTERM/SIGINT, then drains.
pub async fn serve(config: ServeConfig, sdk: &aws_config::SdkConfig) -> Result<(), Error> {
    if sdk.region().is_none() {
        return Err(Error::Config(
            "no AWS region: set AWS_REGION (IRSA and Pod Identity set it in EKS)".into(),
        ));
    }
    if config.auth_token.is_none() {
        tracing::warn!(
            "NO AUTH TOKEN CONFIGURED: anyone who can reach {} can publish alerts; set --auth-token-file / AUTH_TOKEN_FILE",
            config.listen
        );
    }
    let topic = alert_aws::TopicArn::parse(&config.topic_arn).map_err(Error::Config)?;
    let publisher = SnsPublisher::new(
        alert_aws::sdk::sns_client(sdk, &topic),
        topic,
        alert_aws::RetryPolicy::within(config.publish_deadline),
    );
    let account = account::Account::new(config.account_id.clone());
    let metrics = Arc::new(metrics::Metrics::new());
    let kube_client = kubernetes_client(&config).await?;
    let context = kube_client
        .clone()
        .map(|client| context::start(client, config.context.clone(), metrics.clone()));
    if let (Some(events), Some(client)) = (&config.events, &kube_client) {
        start_events(
            &config,
            events,
            client.clone(),
            publisher.clone(),
            context.clone(),
            metrics.clone(),
            account.clone(),
        );
    }
    let state = server::AppState {
        publisher,
        cluster: config.cluster.clone(),
        account,
        auth: config.auth_token.clone().map(server::TokenStore::new),
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: config.body_read_timeout,
        webhook_slots: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_webhooks)),
        metrics,
        context,
        recent: Arc::new(recent::RecentIds::new(
            config.recent_ids_capacity,
            recent::ACCEPTED_TTL,
        )),
        resolves: Arc::new(recent::Resolves::new(config.recent_ids_capacity)),
    };
    let webhook = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.metrics_listen,
            source,
        })?;
    tracing::info!(
        listen = %config.listen,
        metrics = %config.metrics_listen,
        topic = %config.topic_arn,
        cluster = %config.cluster,
        fifo = state.publisher.is_fifo(),
        account = state.account.get().unwrap_or("from STS"),
        tls = config.tls.is_some(),
        "agent started"
    );
    tokio::spawn(server::become_ready(
        state.clone(),
        aws_sdk_sts::Client::new(sdk),
    ));
    if let (Some(tokens), Some(path)) = (&state.auth, &config.auth_token_file) {
        tokio::spawn(tokens.clone().follow(
            path.clone(),
            config.auth_token_grace,
            server::auth::RELOAD_INTERVAL,
            state.metrics.clone(),
        ));
    }
    if let Some(tls) = &config.tls {
        tokio::spawn(
            tls.clone()
                .follow(server::tls::RELOAD_INTERVAL, state.metrics.clone()),
        );
    }
    let limits = config.listener_limits;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_task = tokio::spawn(server::listener::serve(
        server::listener::Listener {
            socket: metrics_listener,
            name: "metrics",
            limits,
            tls: None,
        },
        server::metrics_router(state.clone()),
        state.metrics.clone(),
        // The metrics listener serves until the process exits: probes and
        // scrapes still answer while the webhook drains.
        tokio::sync::watch::channel(false).1,
    ));
    let server_task = tokio::spawn(server::listener::serve(
        server::listener::Listener {
            socket: webhook,
            name: "webhook",
            limits,
            tls: config.tls.clone(),
        },
        server::webhook_router(state.clone()),
        state.metrics.clone(),
        stop_rx,
    ));
    shutdown_signal().await;
    tracing::info!(
        drain_seconds = config.drain.as_secs(),
        "shutting down: no new webhooks, draining in-flight publishes"
    );
    let _ = stop_tx.send(true);
    match tokio::time::timeout(config.drain, server_task).await {
        Ok(_) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            "drain time exceeded; exiting with requests in flight (Alertmanager will retry them)"
        ),
    }
    metrics_task.abort();
    Ok(())
}

/// The Kubernetes client, if the mode and the environment give one.
async fn kubernetes_client(config: &ServeConfig) -> Result<Option<kube::Client>, Error> {
    if config.kubernetes == config::KubernetesMode::Off {
        tracing::info!("Kubernetes context off (KUBERNETES_CONTEXT=off)");
        return Ok(None);
    }
    let kube_config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) if config.events.is_none() => {
            tracing::warn!(error = %e, "no Kubernetes API found (not in a cluster, no KUBECONFIG); alerts go out without cluster context");
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "--events / EVENTS_ENABLED needs the Kubernetes API, but none was found: {e}"
            )));
        }
    };
    tracing::info!(api = %kube_config.cluster_url, "Kubernetes context on");
    kube::Client::try_from(kube_config)
        .map(Some)
        .map_err(|e| Error::Config(format!("cannot build the Kubernetes client: {e}")))
}

/// Starts the lease elector and the event pipeline that runs while leading.
fn start_events(
    config: &ServeConfig,
    events: &config::EventsConfig,
    client: kube::Client,
    publisher: SnsPublisher,
    context: Option<context::ClusterContext>,
    metrics: Arc<metrics::Metrics>,
    account: account::Account,
) {
    let namespace = events
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let lease = leader::LeaseConfig::new(
        events.lease_name.clone(),
        namespace,
        events.identity.clone(),
        events.lease_duration,
    );
    tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "events enabled; electing a leader");
    let (leading_tx, leading_rx) = tokio::sync::watch::channel(false);
    let watermark = Arc::new(events::Watermark::default());
    tokio::spawn(
        leader::LeaderElector::new(client.clone(), lease)
            .with_watermark(watermark.clone())
            .run(leading_tx, metrics.clone()),
    );
    let pipeline = events::EventPipeline {
        cluster: config.cluster.clone(),
        filter: Arc::new(events.filter.clone()),
        rate_burst: events.rate_per_object,
        rate_window: events.rate_window,
        buffer: Arc::new(events::EventBuffer::new(
            events.buffer_size,
            events.overflow,
        )),
        // The events' own retry stage: far longer than a webhook's, as no
        // Alertmanager retries behind it; what it cannot publish in this
        // time goes back into the buffer.
        publisher: SnsPublisher::new(
            publisher.client().clone(),
            publisher.topic().clone(),
            alert_aws::RetryPolicy {
                deadline: EVENT_PUBLISH_DEADLINE,
                min_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(30),
            },
        ),
        context,
        metrics,
        account,
        recent: Arc::new(recent::RecentIds::new(
            config.recent_ids_capacity,
            recent::ACCEPTED_TTL,
        )),
        watermark,
    };
    tokio::spawn(pipeline.run_while_leader(client, leading_rx));
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
