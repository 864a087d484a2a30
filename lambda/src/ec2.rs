//! `Ec2Enricher`: instance data and tags for every instance of a batch, in
//! one DescribeInstances per 200 distinct ids, cached across warm invocations.
//!
//! It filters by `instance-id` instead of passing `InstanceIds`: with a
//! filter, a terminated or unknown instance is simply absent, while
//! `InstanceIds` would fail the whole call with `InvalidInstanceID.NotFound`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alert_aws::classify_sdk_error;
use alert_envelope::Ec2Enrichment;
use aws_sdk_ec2::types::Filter;

/// Most values DescribeInstances takes in one filter.
pub const MAX_IDS_PER_CALL: usize = 200;

/// Why an instance has no EC2 data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ec2Miss {
    /// DescribeInstances did not list it (terminated long ago, other account or region).
    NotFound,
    /// The call failed; the message says why.
    Failed(String),
}

/// Looks up EC2 instances with a process-wide TTL cache.
#[derive(Debug)]
pub struct Ec2Enricher {
    client: aws_sdk_ec2::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Ec2Enrichment)>>,
}

impl Ec2Enricher {
    /// An enricher; entries live `ttl`.
    pub fn new(client: aws_sdk_ec2::Client, ttl: Duration) -> Self {
        Ec2Enricher {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Data for each id: from the cache, else from DescribeInstances calls
    /// of at most 200 ids, each bounded by `timeout`. Tags are returned whole;
    /// the caller applies its deny-list.
    pub async fn describe(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> (HashMap<String, Result<Ec2Enrichment, Ec2Miss>>, usize) {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match cache.get(id) {
                    Some((at, data)) if at.elapsed() < self.ttl => {
                        out.insert(id.clone(), Ok(data.clone()));
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        missing.sort();
        missing.dedup();
        let mut calls = 0;
        for chunk in missing.chunks(MAX_IDS_PER_CALL) {
            let mut found = HashMap::new();
            let mut next_token: Option<String> = None;
            let result: Result<(), String> = loop {
                calls += 1;
                let call = self
                    .client
                    .describe_instances()
                    .filters(
                        Filter::builder()
                            .name("instance-id")
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .set_next_token(next_token.take())
                    .send();
                match tokio::time::timeout(timeout, call).await {
                    Err(_) => break Err(format!("DescribeInstances timed out after {timeout:?}")),
                    Ok(Err(e)) => {
                        let c = classify_sdk_error(&e);
                        break Err(format!(
                            "DescribeInstances failed ({}): {}",
                            c.reason, c.detail
                        ));
                    }
                    Ok(Ok(resp)) => {
                        for instance in resp.reservations().iter().flat_map(|r| r.instances()) {
                            if let Some(data) = to_enrichment(instance) {
                                found.insert(data.instance_id.clone(), data);
                            }
                        }
                        match resp.next_token() {
                            Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                            _ => break Ok(()),
                        }
                    }
                }
            };
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in chunk {
                let entry = match (&result, found.remove(id)) {
                    (_, Some(data)) => {
                        cache.insert(id.clone(), (Instant::now(), data.clone()));
                        Ok(data)
                    }
                    (Ok(()), None) => Err(Ec2Miss::NotFound),
                    (Err(e), None) => Err(Ec2Miss::Failed(e.clone())),
                };
                out.insert(id.clone(), entry);
            }
        }
        (out, calls)
    }
}

fn to_enrichment(i: &aws_sdk_ec2::types::Instance) -> Option<Ec2Enrichment> {
    let tags: BTreeMap<String, String> = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect();
    Some(Ec2Enrichment {
        instance_id: i.instance_id()?.to_string(),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string()),
        launch_time: i
            .launch_time()
            .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok()),
        private_ip: i.private_ip_address().map(String::from),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(String::from),
        nodegroup: tags
            .get("eks:nodegroup-name")
            .or_else(|| tags.get("karpenter.sh/nodepool"))
            .cloned(),
        autoscaling_group: tags.get("aws:autoscaling:groupName").cloned(),
        tags,
    })
}
