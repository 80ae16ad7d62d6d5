//! One integration-test binary for the workspace-level tests (keeps link time down).

// A test binary has no API: `pub` in its modules only shares helpers between them.
#![allow(unreachable_pub)]

mod arch;
mod engines_2026;
mod facts_props;
mod fixtures;
mod flood;
mod host_network;
mod live;
mod module_order;
mod policy;
mod policy_shapes;
mod probe;
mod relay;
mod remote;
mod replay;
