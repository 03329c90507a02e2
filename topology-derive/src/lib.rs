//! Proc macros for `topology` (see issue: topology-derive). Entry points land here.
