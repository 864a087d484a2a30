//! JSON Schema of the envelope, generated from the Rust types.
//!
//! Keys are sorted, so the text does not depend on whether some other crate
//! in the build turned on serde_json's `preserve_order` (feature unification
//! differs between `cargo test -p alert-envelope` and a workspace build).

use serde_json::{Map, Value};

use crate::Envelope;

/// The JSON Schema of [`Envelope`], pretty-printed with sorted keys and a
/// trailing newline, exactly as committed at `docs/envelope.schema.json`.
pub fn envelope_schema_json() -> String {
    let schema = schemars::schema_for!(Envelope);
    let value = serde_json::to_value(&schema).unwrap_or(Value::Null);
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
