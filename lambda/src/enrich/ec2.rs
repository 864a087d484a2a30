//! `Ec2Enricher`: instance data and tags for every instance of a batch, in
//! one DescribeInstances per 200 distinct ids per (account, region), cached
//! across warm invocations under (account, region, instance id).
//!
//! The cache is bounded (least recently used out first) and remembers
//! NotFound for a short while, so a terminated instance that keeps alerting
//! is not described again in every batch.
//!
//! It filters by `instance-id` instead of passing `InstanceIds`: with a
//! filter, a terminated or unknown instance is simply absent, while
//! `InstanceIds` would fail the whole call with `InvalidInstanceID.NotFound`.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alert_aws::{Deadline, classify_sdk_error};
use alert_envelope::Ec2Enrichment;
use aws_sdk_ec2::types::Filter;
use lru::LruCache;

use super::fleet::Scope;

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

/// How long answers are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ec2CacheConfig {
    /// How long a described instance is reused (`EC2_CACHE_TTL_SECONDS`).
    pub ttl: Duration,
    /// How long a NotFound is believed (`EC2_NEGATIVE_TTL_SECONDS`).
    pub negative_ttl: Duration,
    /// Most instances kept (`EC2_CACHE_MAX_INSTANCES`).
    pub max_instances: NonZeroUsize,
}

/// A cached answer: the instance, or `None` for NotFound.
#[derive(Debug)]
struct Entry {
    at: Instant,
    data: Option<Ec2Enrichment>,
}

/// Looks up EC2 instances with one process-wide bounded cache for every
/// account and region.
#[derive(Debug)]
pub struct Ec2Enricher {
    config: Ec2CacheConfig,
    cache: Mutex<LruCache<(Scope, String), Entry>>,
}

impl Ec2Enricher {
    /// An enricher caching as `config` says.
    pub fn new(config: Ec2CacheConfig) -> Self {
        Ec2Enricher {
            cache: Mutex::new(LruCache::new(config.max_instances)),
            config,
        }
    }

    /// Data for each id of `scope`: from the cache, else from
    /// DescribeInstances calls of at most 200 ids through `client` (that
    /// scope's), none started after `deadline`. Tags are returned whole;
    /// the caller applies its deny-list.
    pub async fn describe(
        &self,
        client: &aws_sdk_ec2::Client,
        scope: &Scope,
        ids: &[String],
        deadline: &Deadline,
    ) -> (HashMap<String, Result<Ec2Enrichment, Ec2Miss>>, usize) {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match cache.get(&(scope.clone(), id.clone())) {
                    Some(Entry { at, data: Some(d) }) if at.elapsed() < self.config.ttl => {
                        out.insert(id.clone(), Ok(d.clone()));
                    }
                    Some(Entry { at, data: None }) if at.elapsed() < self.config.negative_ttl => {
                        out.insert(id.clone(), Err(Ec2Miss::NotFound));
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
                let Some(timeout) = deadline.timeout(alert_aws::sdk::ATTEMPT_TIMEOUT) else {
                    break Err(
                        "DescribeInstances not sent: no time left before the deadline".into(),
                    );
                };
                calls += 1;
                let call = client
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
                    Err(_) => {
                        break Err(format!(
                            "DescribeInstances timed out after {} ms",
                            timeout.as_millis()
                        ));
                    }
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
                        let at = Instant::now();
                        cache.put(
                            (scope.clone(), id.clone()),
                            Entry {
                                at,
                                data: Some(data.clone()),
                            },
                        );
                        Ok(data)
                    }
                    (Ok(()), None) => {
                        let at = Instant::now();
                        cache.put((scope.clone(), id.clone()), Entry { at, data: None });
                        Err(Ec2Miss::NotFound)
                    }
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

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types::{Instance, Reservation};
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use super::*;

    /// DescribeInstances that knows every id except those starting `i-gone`.
    fn describe_rule() -> Rule {
        mock!(aws_sdk_ec2::Client::describe_instances).then_compute_output(|input| {
            let instances = input
                .filters()
                .iter()
                .flat_map(|f| f.values())
                .filter(|id| !id.starts_with("i-gone"))
                .map(|id| Instance::builder().instance_id(id).build())
                .collect();
            DescribeInstancesOutput::builder()
                .reservations(
                    Reservation::builder()
                        .set_instances(Some(instances))
                        .build(),
                )
                .build()
        })
    }

    fn enricher(rule: &Rule, max: usize) -> (Ec2Enricher, aws_sdk_ec2::Client) {
        let client = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_ec2::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                    "a", "b", None, None, "t",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(
                    MockResponseInterceptor::new()
                        .rule_mode(RuleMode::MatchAny)
                        .with_rule(rule),
                )
                .build(),
        );
        let e = Ec2Enricher::new(Ec2CacheConfig {
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(60),
            max_instances: NonZeroUsize::new(max).unwrap(),
        });
        (e, client)
    }

    fn scope(account: &str) -> Scope {
        Scope {
            account: account.into(),
            region: "us-east-1".into(),
        }
    }

    fn deadline() -> Deadline {
        Deadline::within(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn the_cache_stays_at_its_bound() {
        let rule = describe_rule();
        let (e, c) = enricher(&rule, 10_000);
        let ids: Vec<String> = (0..20_000).map(|i| format!("i-{i:017x}")).collect();
        let (found, calls) = e
            .describe(&c, &scope("111111111111"), &ids, &deadline())
            .await;
        assert_eq!(calls, 100, "200 ids per call");
        assert_eq!(found.values().filter(|r| r.is_ok()).count(), 20_000);
        assert_eq!(e.cache.lock().unwrap().len(), 10_000);
        // The most recent half is what is kept: no call for it.
        let (_, calls) = e
            .describe(&c, &scope("111111111111"), &ids[10_000..], &deadline())
            .await;
        assert_eq!(calls, 0);
        assert_eq!(e.cache.lock().unwrap().len(), 10_000);
    }

    #[tokio::test]
    async fn a_not_found_instance_is_not_described_again_within_its_ttl() {
        let rule = describe_rule();
        let (e, c) = enricher(&rule, 100);
        let ids = vec!["i-gone0000000000001".to_string()];
        let (found, calls) = e
            .describe(&c, &scope("111111111111"), &ids, &deadline())
            .await;
        assert_eq!((calls, &found[&ids[0]]), (1, &Err(Ec2Miss::NotFound)));
        let (found, calls) = e
            .describe(&c, &scope("111111111111"), &ids, &deadline())
            .await;
        assert_eq!((calls, &found[&ids[0]]), (0, &Err(Ec2Miss::NotFound)));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_expired_negative_entry_is_asked_again() {
        let rule = describe_rule();
        let (mut e, c) = enricher(&rule, 100);
        e.config.negative_ttl = Duration::ZERO;
        let ids = vec!["i-gone0000000000002".to_string()];
        e.describe(&c, &scope("111111111111"), &ids, &deadline())
            .await;
        let (_, calls) = e
            .describe(&c, &scope("111111111111"), &ids, &deadline())
            .await;
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn one_instance_id_in_two_accounts_is_two_cache_entries() {
        let rule = describe_rule();
        let (e, c) = enricher(&rule, 100);
        let ids = vec!["i-00000000000000003".to_string()];
        for account in ["111111111111", "222222222222", "111111111111"] {
            let (found, _) = e.describe(&c, &scope(account), &ids, &deadline()).await;
            assert!(found[&ids[0]].is_ok());
        }
        assert_eq!(rule.num_calls(), 2, "one DescribeInstances per account");
        assert_eq!(e.cache.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn nothing_is_sent_after_the_deadline() {
        let rule = describe_rule();
        let (e, c) = enricher(&rule, 100);
        let expired = Deadline::within(Duration::from_millis(100));
        let ids = vec!["i-00000000000000001".to_string()];
        let (found, calls) = e.describe(&c, &scope("111111111111"), &ids, &expired).await;
        assert_eq!(calls, 0);
        assert!(matches!(&found[&ids[0]], Err(Ec2Miss::Failed(m)) if m.contains("deadline")));
    }
}
