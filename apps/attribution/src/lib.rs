//! Placeholder: the attribution topology lands with its own issue.
