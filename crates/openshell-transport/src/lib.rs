//! How this project reaches a container engine, and nothing else: which endpoints can be
//! reached at all ([`transport::check`]), every connection to one ([`transport::connect`]:
//! `unix://`, `tcp://` with or without TLS, `ssh://` through the system ssh client), each
//! reply read within a byte budget, raw requests ([`raw`]), the private proxy podman-api
//! talks through ([`proxy`]), and an attached container's streams as one byte pipe
//! ([`attach`]).
//!
//! The design choice: every engine connection, whichever client library speaks over it,
//! is opened here and handed out already capped ([`transport::Capped`]), so no reply of any
//! engine, however hostile, is read past [`transport::MAX_REPLY`] bytes. This crate is the
//! only one that depends on hyper and rustls; it knows nothing of sandboxes, routes or
//! discovery: a [`transport::Target`] (an endpoint with its TLS material or ssh settings)
//! comes in, bytes go out.
#![deny(missing_docs)]

pub mod attach;
pub mod file;
pub mod proxy;
pub mod raw;
pub mod ssh;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod transport;

/// An error from a client library or the operating system, kept whole as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use attach::Attached;
pub use transport::{Target, TransportError, MAX_REPLY};
