//! Placeholder library; filled by later issues.
