//! Who owns an alert, and which EC2 tags an envelope may carry.

use alert_envelope::{Ec2Enrichment, Envelope};

/// Owner resolution and the tag deny-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamConfig {
    /// EC2 tag keys never copied into envelopes; `prefix*` matches a prefix.
    pub tag_deny_list: Vec<String>,
    /// EC2 tag keys that name the owning team, in order.
    pub tag_names: Vec<String>,
    /// Team for alerts whose owner is found nowhere.
    pub default_team: String,
}

impl TeamConfig {
    /// Whether a tag key is on the deny-list.
    pub fn tag_denied(&self, key: &str) -> bool {
        self.tag_deny_list
            .iter()
            .any(|d| match d.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == d,
            })
    }

    /// `kubernetes.team`, then the first configured EC2 tag, then the `team`
    /// label, then the default.
    pub fn resolve(&self, env: &Envelope, ec2: Option<&Ec2Enrichment>) -> String {
        env.kubernetes
            .as_ref()
            .and_then(|k| k.team.clone())
            .or_else(|| {
                ec2.and_then(|e| {
                    self.tag_names
                        .iter()
                        .find_map(|t| e.tags.get(t).filter(|v| !v.is_empty()).cloned())
                })
            })
            .or_else(|| env.labels.get("team").cloned())
            .unwrap_or_else(|| self.default_team.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TeamConfig {
        TeamConfig {
            tag_deny_list: vec!["aws:cloudformation:*".into(), "secret".into()],
            tag_names: vec!["team".into(), "owner".into()],
            default_team: "unassigned".into(),
        }
    }

    #[test]
    fn the_deny_list_matches_exact_keys_and_prefixes() {
        let c = config();
        assert!(c.tag_denied("aws:cloudformation:stack-name"));
        assert!(c.tag_denied("secret"));
        assert!(!c.tag_denied("secrets"));
        assert!(!c.tag_denied("team"));
    }

    #[test]
    fn the_owner_comes_from_the_first_source_that_names_one() {
        let c = config();
        let mut env = Envelope::from_json(include_str!(
            "../../../docs/examples/enriched-envelope.json"
        ))
        .unwrap();
        env.kubernetes = None;
        env.labels.insert("team".into(), "from-label".into());
        let mut ec2 = env.enrichment.as_ref().unwrap().ec2.clone().unwrap();
        ec2.tags.clear();
        ec2.tags.insert("owner".into(), "from-owner-tag".into());
        assert_eq!(c.resolve(&env, Some(&ec2)), "from-owner-tag");
        ec2.tags.insert("team".into(), String::new());
        assert_eq!(
            c.resolve(&env, Some(&ec2)),
            "from-owner-tag",
            "an empty tag names nobody"
        );
        assert_eq!(c.resolve(&env, None), "from-label");
        env.labels.remove("team");
        assert_eq!(c.resolve(&env, None), "unassigned");
        env.kubernetes = Some(alert_envelope::KubernetesContext {
            team: Some("from-namespace".into()),
            ..Default::default()
        });
        assert_eq!(c.resolve(&env, Some(&ec2)), "from-namespace");
    }
}
