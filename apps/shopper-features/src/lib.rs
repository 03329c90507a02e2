//! Placeholder: the shopper-features topology lands with its own issue.
