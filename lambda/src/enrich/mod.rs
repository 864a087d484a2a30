//! Enrichment: what AWS knows about the machine behind each alert, in as few
//! calls as the batch allows, and who owns it.
//!
//! - [`ec2`]: one DescribeInstances per 200 distinct instances, cached.
//! - [`cloudwatch`]: one GetMetricData per 500 series, one window per batch.
//! - [`team`]: the owner, from the namespace, EC2 tags or labels.
//! - [`metric_sets`]: which metrics each alert gets.
//!
//! Enrichment never blocks delivery: a failed step becomes an
//! `enrichment.errors` entry and the alert goes on.

pub mod cloudwatch;
pub mod ec2;
pub mod metric_sets;
pub mod team;

use std::collections::BTreeSet;

use alert_aws::Deadline;
use alert_envelope::{EnrichmentError, Envelope};

use crate::config::EnricherConfig;
use cloudwatch::CloudWatchEnricher;
use ec2::{Ec2Enricher, Ec2Miss};
use team::TeamConfig;

/// The enrichers, built once at init.
#[derive(Debug)]
pub struct Enrichers {
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
    /// Envelopes with EC2 data.
    pub enriched: usize,
}

fn instance_of(env: &Envelope) -> Option<String> {
    env.aws.as_ref().and_then(|a| a.instance_id.clone())
}

impl Enrichers {
    /// Enrichers over the EC2 and CloudWatch clients of `region`.
    pub fn new(
        config: &EnricherConfig,
        ec2: aws_sdk_ec2::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        region: String,
    ) -> Enrichers {
        Enrichers {
            ec2: Ec2Enricher::new(ec2, config.ec2_cache),
            cloudwatch: CloudWatchEnricher::new(cloudwatch, config.metrics.clone(), region),
            team: config.team.clone(),
        }
    }

    /// Adds EC2, CloudWatch and team to every envelope, with no call started
    /// after `deadline`. Never fails: errors go to `enrichment.errors`.
    pub async fn enrich(&self, envelopes: &mut [Envelope], deadline: &Deadline) -> EnrichReport {
        let ids: Vec<String> = envelopes
            .iter()
            .filter_map(instance_of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Neither call needs the other's answer.
        let ((instances, describe_calls), metrics) = tokio::join!(
            self.ec2.describe(&ids, deadline),
            self.cloudwatch
                .fetch_batch(envelopes, instance_of, deadline),
        );
        let mut report = EnrichReport {
            describe_instances_calls: describe_calls,
            get_metric_data_calls: metrics.calls,
            enriched: 0,
        };
        for env in envelopes.iter_mut() {
            let mut enrichment = env.enrichment.take().unwrap_or_default();
            if let Some(id) = instance_of(env) {
                match instances.get(&id) {
                    Some(Ok(data)) => {
                        let mut data = data.clone();
                        data.tags.retain(|k, _| !self.team.tag_denied(k));
                        enrichment.ec2 = Some(data);
                        report.enriched += 1;
                    }
                    Some(Err(Ec2Miss::NotFound)) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: format!("instance {id} not found by DescribeInstances"),
                    }),
                    Some(Err(Ec2Miss::Failed(m))) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: m.clone(),
                    }),
                    None => {}
                }
                let (summaries, failure) = self.cloudwatch.summaries(env, &id, &metrics);
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
