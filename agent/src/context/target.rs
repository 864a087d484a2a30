//! What an alert's labels say it is about, before any lookup.

use std::collections::BTreeMap;

/// What an alert's labels say it is about, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The `node` label.
    pub node: Option<String>,
    /// The `instance` label when it may name a node (not kube-state-metrics).
    pub instance: Option<String>,
    /// Namespace: `exported_namespace` when present, else `namespace`.
    pub namespace: Option<String>,
    /// Pod: `exported_pod` when present, else `pod`.
    pub pod: Option<String>,
}

impl Target {
    /// Reads the labels. `exported_*` win over the plain labels because
    /// Prometheus renames a target's own `namespace`/`pod` to `exported_*`
    /// when they clash: the exported ones are the object, the plain ones the
    /// exporter.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Target {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let is_ksm = labels
            .get("job")
            .is_some_and(|j| j.contains("kube-state-metrics"));
        Target {
            node: get("node"),
            instance: if is_ksm { None } else { get("instance") },
            namespace: get("exported_namespace").or_else(|| get("namespace")),
            pod: get("exported_pod").or_else(|| get("pod")),
        }
    }
}

/// The host part of an `instance` label (`10.0.1.23:9100` → `10.0.1.23`,
/// `[fd00::1]:9100` → `fd00::1`, `node-a` → `node-a`).
pub fn instance_host(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_instance_label() {
        assert_eq!(instance_host("10.0.1.23:9100"), "10.0.1.23");
        assert_eq!(instance_host("[fd00::1]:9100"), "fd00::1");
        assert_eq!(instance_host("node-a"), "node-a");
    }
}
