//! Placeholder: the fraud topology lands with its own issue.
