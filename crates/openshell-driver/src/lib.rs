//! The driver seam: the one trait a driver crate implements ([`EngineOps`]), the plain values
//! its operations take and give, and the error kinds every caller decides on.
//!
//! The design choice: a driver is engine operations over its own client library, nothing
//! more. It turns a [`ContainerConfig`] into its client's create call, its client's answers
//! into the plain values here, and its client's errors into an [`OpError`] whose
//! [`ErrorKind`] comes from the status code. Timeouts, tracing spans, cleanup, retries,
//! network ownership and the relay are written once above this seam (`openshell-sandbox`),
//! and finding an engine once beside it (`openshell-engine`), so a new driver is one crate
//! implementing [`EngineOps`]; the relay's three operations have defaults that report
//! [`ErrorKind::Unsupported`], so a driver that cannot carry a relay still compiles and the
//! relay route refuses clearly.
#![deny(missing_docs)]

mod error;
pub mod libpod;
mod ops;

pub use error::{transport_kind, BoxError, DriverError, ErrorKind, OpError, Unsupported};
pub use openshell_transport::Attached;
pub use ops::{
    labels_of, BindMount, ContainerConfig, ContainerStatus, ContainerSummary, EngineDocuments,
    EngineOps, ImageSummary, LogStream, NetworkInfo, PingHeaders, Subnet,
};
