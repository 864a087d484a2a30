//! Nodes: what of a node is kept in the store, and the node's part of the
//! context (instance id, zone, region, type, nodegroup or nodepool).

use alert_envelope::{AwsContext, KubernetesContext};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};

/// Node labels the agent reads; every other node label is dropped before the store.
pub const NODE_LABELS: &[&str] = &[
    LABEL_REGION,
    LABEL_ZONE,
    LABEL_INSTANCE_TYPE,
    LABEL_NODEGROUP,
    LABEL_NODEPOOL,
    LABEL_KARPENTER_PROVISIONER,
];
const LABEL_REGION: &str = "topology.kubernetes.io/region";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
const LABEL_NODEGROUP: &str = "eks.amazonaws.com/nodegroup";
const LABEL_NODEPOOL: &str = "karpenter.sh/nodepool";
/// Karpenter before v1 (v1alpha5) named the pool a provisioner.
const LABEL_KARPENTER_PROVISIONER: &str = "karpenter.sh/provisioner-name";

/// `aws:///us-west-2a/i-0abc123def4567890` → (`us-west-2a`, `i-0abc123def4567890`).
///
/// Fargate (`aws:///<az>/<id>/fargate-ip-...`), other clouds and malformed
/// values give `None`: no instance id, which is not an error.
pub fn parse_provider_id(provider_id: &str) -> Option<(&str, &str)> {
    let rest = provider_id.strip_prefix("aws://")?;
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (zone, instance) = match parts.as_slice() {
        [zone, instance] => (*zone, *instance),
        _ => return None,
    };
    let id = instance.strip_prefix("i-")?;
    let valid_id = (id.len() == 8 || id.len() == 17)
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid_zone = !zone.is_empty()
        && zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (valid_id && valid_zone).then_some((zone, instance))
}

/// The region of an availability zone (`us-west-2a` → `us-west-2`; local
/// zones such as `us-west-2-lax-1a` → `us-west-2`).
pub fn region_of_zone(zone: &str) -> Option<String> {
    let mut parts = zone.split('-');
    let (geo, area, num) = (parts.next()?, parts.next()?, parts.next()?);
    let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("{geo}-{area}-{digits}"))
}

/// Keeps only what [`node_context`] reads: name, the [`NODE_LABELS`],
/// `spec.providerID` and the InternalIP addresses.
pub fn strip_node(node: &mut Node) {
    let meta = &mut node.metadata;
    let labels = meta.labels.take().map(|mut l| {
        l.retain(|k, _| NODE_LABELS.contains(&k.as_str()));
        l
    });
    *meta = kube::api::ObjectMeta {
        name: meta.name.take(),
        labels,
        ..Default::default()
    };
    let provider_id = node.spec.take().and_then(|s| s.provider_id);
    node.spec = Some(NodeSpec {
        provider_id,
        ..Default::default()
    });
    let addresses: Vec<NodeAddress> = node
        .status
        .take()
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .collect();
    node.status = Some(NodeStatus {
        addresses: Some(addresses),
        ..Default::default()
    });
}

/// The node's part of the context: instance id and zone from the provider
/// id, region, type, nodegroup and nodepool from the labels.
pub fn node_context(node: &Node, k8s: &mut KubernetesContext) -> AwsContext {
    let labels = node.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    k8s.node = node.metadata.name.clone();
    k8s.nodegroup = label(LABEL_NODEGROUP);
    k8s.nodepool = label(LABEL_NODEPOOL).or_else(|| label(LABEL_KARPENTER_PROVISIONER));
    let provider = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .and_then(parse_provider_id);
    let zone = provider
        .map(|(z, _)| z.to_string())
        .or_else(|| label(LABEL_ZONE));
    AwsContext {
        instance_id: provider.map(|(_, id)| id.to_string()),
        region: label(LABEL_REGION).or_else(|| zone.as_deref().and_then(region_of_zone)),
        availability_zone: zone,
        instance_type: label(LABEL_INSTANCE_TYPE),
        account_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_of_ec2_nodes_give_zone_and_instance_and_others_nothing() {
        assert_eq!(
            parse_provider_id("aws:///us-west-2a/i-0abc123def4567890"),
            Some(("us-west-2a", "i-0abc123def4567890"))
        );
        assert_eq!(
            parse_provider_id(
                "aws:///us-west-2a/0a1b2c3d4e/fargate-ip-10-0-1-23.us-west-2.compute.internal"
            ),
            None
        );
        assert_eq!(parse_provider_id("gce://project/zone/vm"), None);
    }

    #[test]
    fn the_region_of_a_zone_and_of_a_local_zone() {
        assert_eq!(region_of_zone("us-west-2a").as_deref(), Some("us-west-2"));
        assert_eq!(
            region_of_zone("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
    }
}
