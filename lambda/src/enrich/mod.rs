//! Enrichment: what AWS knows about the machine behind each alert, in as few
//! calls as the batch allows, and who owns it.
//!
//! - [`fleet`]: the clients of each (account, region) a batch names.
//! - [`ec2`]: one DescribeInstances per 200 distinct instances per
//!   (account, region), cached.
//! - [`cloudwatch`]: one GetMetricData per 500 series per (account,
//!   region), one window per batch.
//! - [`team`]: the owner, from the namespace, EC2 tags or labels.
//! - [`metric_sets`]: which metrics each alert gets.
//!
//! Enrichment never blocks delivery: a failed step becomes an
//! `enrichment.errors` entry and the alert goes on.

pub mod cloudwatch;
pub mod ec2;
pub mod fleet;
pub mod metric_sets;
pub mod team;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alert_aws::Deadline;
use alert_envelope::{Ec2Enrichment, EnrichmentError, Envelope};

use crate::config::EnricherConfig;
use cloudwatch::{BatchMetrics, CloudWatchEnricher};
use ec2::{Ec2Enricher, Ec2Miss};
use fleet::{Fleet, FleetCalls, Scope};
use team::TeamConfig;

/// The enrichers, built once at init.
#[derive(Debug)]
pub struct Enrichers {
    fleet: Fleet,
    ec2: Ec2Enricher,
    cloudwatch: CloudWatchEnricher,
    team: TeamConfig,
}

/// What enrichment cost and found, for the EMF counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EnrichReport {
    /// DescribeInstances calls.
    pub describe_instances_calls: usize,
    /// GetMetricData calls.
    pub get_metric_data_calls: usize,
    /// AssumeRole calls (other accounts).
    pub assume_role_calls: usize,
    /// Envelopes with EC2 data.
    pub enriched: usize,
}

fn instance_of(env: &Envelope) -> Option<String> {
    env.aws.as_ref().and_then(|a| a.instance_id.clone())
}

/// What one scope's calls found.
struct ScopeFindings {
    instances: HashMap<String, Result<Ec2Enrichment, Ec2Miss>>,
    metrics: BatchMetrics,
    describe_calls: usize,
}

impl Enrichers {
    /// Enrichers over `fleet`'s clients.
    pub fn new(config: &EnricherConfig, fleet: Fleet) -> Enrichers {
        Enrichers {
            fleet,
            ec2: Ec2Enricher::new(config.ec2_cache),
            cloudwatch: CloudWatchEnricher::new(config.metrics.clone()),
            team: config.team.clone(),
        }
    }

    /// Lets the fleet assume roles in other accounts through `sts`.
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Enrichers {
        self.fleet = self.fleet.with_sts(sts);
        self
    }

    /// Adds EC2, CloudWatch and team to every envelope, with no call started
    /// after `deadline`. Never fails: errors go to `enrichment.errors`.
    pub async fn enrich(&self, envelopes: &mut [Envelope], deadline: &Deadline) -> EnrichReport {
        // Envelopes by the account and region their machine is in; those
        // that cannot be enriched anywhere keep the reason.
        let mut scopes: BTreeMap<Scope, Vec<usize>> = BTreeMap::new();
        let mut unscoped: HashMap<usize, String> = HashMap::new();
        for (i, env) in envelopes.iter().enumerate() {
            if instance_of(env).is_none() {
                continue;
            }
            match self.fleet.scope_of(env) {
                Ok(scope) => scopes.entry(scope).or_default().push(i),
                Err(why) => {
                    unscoped.insert(i, why);
                }
            }
        }
        let mut fleet_calls = FleetCalls::default();
        let mut clients = Vec::new();
        for (scope, members) in scopes {
            match self.fleet.clients(&scope, deadline, &mut fleet_calls).await {
                Ok(c) => clients.push((scope, members, c)),
                Err(why) => unscoped.extend(members.into_iter().map(|i| (i, why.clone()))),
            }
        }
        // Every scope at once; within one, neither call needs the other's answer.
        let envs: &[Envelope] = envelopes;
        let found = futures::future::join_all(clients.iter().map(|(scope, members, c)| {
            let members: Vec<&Envelope> = members.iter().map(|&i| &envs[i]).collect();
            async move {
                let ids: Vec<String> = members
                    .iter()
                    .filter_map(|e| instance_of(e))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let ((instances, describe_calls), metrics) = tokio::join!(
                    self.ec2.describe(&c.ec2, scope, &ids, deadline),
                    self.cloudwatch
                        .fetch_batch(&c.cloudwatch, &members, instance_of, deadline),
                );
                ScopeFindings {
                    instances,
                    metrics,
                    describe_calls,
                }
            }
        }))
        .await;
        let mut report = EnrichReport {
            assume_role_calls: fleet_calls.assume_role,
            ..EnrichReport::default()
        };
        let mut of_envelope: HashMap<usize, (&Scope, &ScopeFindings)> = HashMap::new();
        for ((scope, members, _), findings) in clients.iter().zip(&found) {
            report.describe_instances_calls += findings.describe_calls;
            report.get_metric_data_calls += findings.metrics.calls;
            of_envelope.extend(members.iter().map(|&i| (i, (scope, findings))));
        }
        for (i, env) in envelopes.iter_mut().enumerate() {
            let mut enrichment = env.enrichment.take().unwrap_or_default();
            if let Some(why) = unscoped.remove(&i) {
                enrichment.errors.push(EnrichmentError {
                    stage: "account".into(),
                    message: why,
                });
            }
            if let (Some(id), Some((scope, findings))) = (instance_of(env), of_envelope.get(&i)) {
                match findings.instances.get(&id) {
                    Some(Ok(data)) => {
                        let mut data = data.clone();
                        data.tags.retain(|k, _| !self.team.tag_denied(k));
                        enrichment.ec2 = Some(data);
                        report.enriched += 1;
                    }
                    Some(Err(Ec2Miss::NotFound)) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: format!(
                            "instance {id} not found by DescribeInstances in account {} region {}",
                            scope.account, scope.region
                        ),
                    }),
                    Some(Err(Ec2Miss::Failed(m))) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: m.clone(),
                    }),
                    None => {}
                }
                let (summaries, failure) =
                    self.cloudwatch
                        .summaries(env, &id, &scope.region, &findings.metrics);
                if let Some(message) = failure {
                    enrichment.errors.push(EnrichmentError {
                        stage: "cloudwatch".into(),
                        message,
                    });
                }
                enrichment.cloudwatch = summaries;
            }
            enrichment.team = Some(self.team.resolve(env, enrichment.ec2.as_ref()));
            env.enrichment = Some(enrichment);
        }
        report
    }
}
