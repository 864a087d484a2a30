//! Namespaces: what is kept in the store, and the owning team.

use k8s_openapi::api::core::v1::Namespace;

use super::ContextConfig;

/// Keeps only the name, the team annotation, and the team and allow-listed labels.
pub fn namespace_stripper(config: &ContextConfig) -> impl FnMut(&mut Namespace) + use<> {
    let annotation = config.team_annotation.clone();
    let mut labels = config.namespace_labels.clone();
    labels.push(config.team_label.clone());
    move |ns: &mut Namespace| {
        let meta = &mut ns.metadata;
        let keep_labels = meta.labels.take().map(|mut l| {
            l.retain(|k, _| labels.contains(k));
            l
        });
        let keep_annotations = meta.annotations.take().map(|mut a| {
            a.retain(|k, _| *k == annotation);
            a
        });
        *meta = kube::api::ObjectMeta {
            name: meta.name.take(),
            labels: keep_labels,
            annotations: keep_annotations,
            ..Default::default()
        };
        ns.spec = None;
        ns.status = None;
    }
}

/// The owning team: the annotation, then the label.
pub fn namespace_team(ns: &Namespace, config: &ContextConfig) -> Option<String> {
    let meta = &ns.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(&config.team_annotation))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(&config.team_label)))
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_string())
}
