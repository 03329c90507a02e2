//! Workspace tests of the apps: topology snapshots and end-to-end runs.

mod attribution;
mod fraud;
