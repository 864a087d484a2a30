//! JSON Schema of the envelope, generated from the Rust types.

use crate::Envelope;

/// The JSON Schema of [`Envelope`], pretty-printed with a trailing newline,
/// exactly as committed at `docs/envelope.schema.json`.
pub fn envelope_schema_json() -> String {
    let schema = schemars::schema_for!(Envelope);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
