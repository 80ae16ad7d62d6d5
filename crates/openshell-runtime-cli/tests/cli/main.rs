//! The `openshell-runtime` binary as users run it: exit codes, JSON fields, live detection.
//! One test binary (keeps link time down), a module per area; the `live_*` modules need live
//! engines (`OPENSHELL_LIVE=require` makes a missing one a failure), the others none.

// A test binary has no API: `pub` in its modules only shares helpers between them.
#![allow(unreachable_pub)]

mod common;

mod config;
mod detect;
mod doctor;
mod env;
mod matrix;

mod live_2026;
mod live_detect;
mod live_doctor;
mod live_interrupt;
mod live_remote;
mod live_vm;
