//! One integration-test binary for the workspace-level tests (keeps link time down).

mod facts_props;
mod fixtures;
mod live;
mod module_order;
mod policy;
mod policy_shapes;
mod probe;
mod replay;
