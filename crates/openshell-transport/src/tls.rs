//! TLS to engines on `tcp://`: the client side of dockerd's `--tlsverify` and of Podman's
//! `system service --tls-cert/--tls-key` (Podman 5.7+).
//!
//! The material comes in two shapes. The docker CLI's is a directory with `ca.pem`, `cert.pem`
//! and `key.pem` (`DOCKER_CERT_PATH`, `~/.docker`, or a context's TLS store), read by
//! [`TlsMaterial::load`]; there `ca.pem` is required. Podman's names each file on its own
//! (`TLSCA`, `TLSCert`, `TLSKey` of a connection, `tls_ca`/`tls_cert`/`tls_key` of a service
//! destination), read by [`TlsMaterial::from_files`]; there the CA may be left out, and the
//! system's trusted CAs verify the engine instead, as Podman's own client does.
//!
//! Either way the engine's certificate is always verified, and its name (host name or IP
//! address) against the endpoint's host; there is no switch that skips this (the docker CLI
//! skips it when `DOCKER_TLS_VERIFY` is unset; we refuse to trust silently instead). The client
//! certificate and key are optional but come as a pair. Everything is read once, when the
//! endpoint is discovered, so a missing or broken file is reported before any connection, with
//! its path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The CA certificate file in a TLS material directory.
pub const CA_FILE: &str = "ca.pem";
/// The client certificate file.
pub const CERT_FILE: &str = "cert.pem";
/// The client key file.
pub const KEY_FILE: &str = "key.pem";

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA certificate is missing: without it nothing can be verified.
    #[error("no CA certificate at {path} ({origin}): openshell always verifies the engine's certificate; put the CA that signed it there, or point DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and key.pem")]
    NoCa {
        /// The file looked for.
        path: String,
        /// Where the directory was named.
        origin: String,
    },
    /// No CA was named and the system's trust store holds no usable certificate.
    #[error("no CA was named for {origin} and the system's trust store has no usable CA certificate ({problem}): name the CA that signed the engine's certificate (TLSCA in podman-connections.json, tls_ca in containers.conf, or --tls-ca)")]
    NoSystemRoots {
        /// Where the material was named.
        origin: String,
        /// What reading the system's store gave.
        problem: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file holds no usable PEM item of the kind needed.
    #[error("{path} holds no {what} in PEM form: {problem}; replace it with the PEM file the engine's CA issued")]
    Pem {
        /// The file.
        path: String,
        /// `certificate` or `private key`.
        what: &'static str,
        /// What the PEM reader said.
        problem: String,
    },
    /// Only one half of the client pair is there.
    #[error("{present} is named but {missing} is not: a client certificate needs its key (and the key its certificate); add the missing one or remove both")]
    Unpaired {
        /// The file found.
        present: String,
        /// The file missing.
        missing: String,
    },
    /// rustls refused the material (a CA that is not a certificate, a key that does not match).
    #[error("the TLS material of {origin} was refused: {source}")]
    Refused {
        /// Where the material was named (and the directory, when it is one).
        origin: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
}

/// A loaded TLS client configuration and where it came from.
#[derive(Clone)]
pub struct TlsMaterial {
    files: TlsFiles,
    origin: String,
    config: Arc<ClientConfig>,
}

/// The files TLS material is read from: the CA that verifies the engine (`None`: the system's
/// trusted CAs), and the client certificate and its key (both or neither).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// The CA certificate(s), PEM.
    pub ca: Option<PathBuf>,
    /// The client certificate chain, PEM.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named (Podman speaks TLS to a `tcp://` endpoint exactly then).
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("files", &self.files)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The most bytes read from one PEM file: CA bundles run to a few hundred KiB (the whole Mozilla
/// store is about 220 KiB); anything larger is not TLS material.
const MAX_PEM: u64 = 4 * 1024 * 1024;

/// A PEM file's bytes. Only a regular file (or a link to one) of at most [`MAX_PEM`] bytes is
/// read, without blocking ([`crate::file::read_small`]): a FIFO would block discovery, a
/// device such as `/dev/zero` would never end, and `/proc/kmsg` is "regular" but blocks.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::file::read_small(path, MAX_PEM).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let pem = |problem: String| TlsError::Pem {
        path: path.display().to_string(),
        what: "certificate",
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The system's trusted CA certificates (rustls-native-certs: the OpenSSL locations on Linux,
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` when set). Certificates it cannot parse are skipped, as
/// Podman's Go client skips them; none at all is an error.
fn system_roots(origin: &str) -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let problem = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "no certificate found".to_string(),
        };
        return Err(TlsError::NoSystemRoots {
            origin: origin.to_string(),
            problem,
        });
    }
    Ok(roots)
}

impl TlsMaterial {
    /// Loads `ca.pem` (required) and `cert.pem` with `key.pem` (optional, as a pair) from
    /// `dir`, named by `origin` (`DOCKER_CERT_PATH`, `docker context "x"`), for messages.
    pub fn load(dir: &Path, origin: &str) -> Result<TlsMaterial, TlsError> {
        let ca = dir.join(CA_FILE);
        if !ca.exists() {
            return Err(TlsError::NoCa {
                path: ca.display().to_string(),
                origin: origin.to_string(),
            });
        }
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert.exists() != key.exists() {
            let (present, missing) = if cert.exists() {
                (cert, key)
            } else {
                (key, cert)
            };
            return Err(TlsError::Unpaired {
                present: present.display().to_string(),
                missing: missing.display().to_string(),
            });
        }
        let files = TlsFiles {
            ca: Some(ca),
            cert: cert.exists().then_some(cert),
            key: key.exists().then_some(key),
        };
        Self::from_files(&files, &format!("{origin} ({})", dir.display()))
    }

    /// Loads the material `files` name, the way Podman's client does: the engine is verified
    /// against `files.ca`, or against the system's trusted CAs when it names none; a client
    /// certificate is presented when both `cert` and `key` are named, and naming only one of
    /// them is an error. `origin` (`connection "x" (podman-connections.json)`) is for messages.
    pub fn from_files(files: &TlsFiles, origin: &str) -> Result<TlsMaterial, TlsError> {
        let refused = |source| TlsError::Refused {
            origin: origin.to_string(),
            source,
        };
        // The pair first: a half-named pair is the likelier mistake, and cheaper to report.
        let pair = match (&files.cert, &files.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(present), None) | (None, Some(present)) => {
                let missing = if files.cert.is_some() {
                    "the key of that certificate"
                } else {
                    "the certificate of that key"
                };
                return Err(TlsError::Unpaired {
                    present: present.display().to_string(),
                    missing: format!("{missing} (in {origin})"),
                });
            }
        };
        let roots = match &files.ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert).map_err(refused)?;
                }
                roots
            }
            None => system_roots(origin)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots);
        let mut config = match pair {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert)?;
                let key_bytes = read(key)?;
                let key_der =
                    PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
                        path: key.display().to_string(),
                        what: "private key",
                        problem: e.to_string(),
                    })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(refused)?
            }
        };
        // HTTP/1.1 only: engines upgrade attach and exec streams, which HTTP/2 has no way to
        // do, and Go servers (dockerd, Podman) offer h2 to a client that asks for it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsMaterial {
            files: files.clone(),
            origin: origin.to_string(),
            config: Arc::new(config),
        })
    }

    /// The files the material was read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The directory of the CA file (the docker CLI's material directory), if a CA was named.
    pub fn dir(&self) -> Option<&Path> {
        self.files.ca.as_deref().and_then(Path::parent)
    }

    /// Where the material was named.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether a client certificate is presented.
    pub fn client_auth(&self) -> bool {
        self.files.cert.is_some()
    }

    /// What the engine's certificate is verified against, for messages: the CA file, or the
    /// system's trusted CAs.
    pub fn trust(&self) -> String {
        match &self.files.ca {
            Some(ca) => ca.display().to_string(),
            None => "the system's trusted CAs".to_string(),
        }
    }

    /// Runs the TLS handshake over `tcp` with the engine at `host`, verifying its certificate.
    pub(crate) async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{self, Target, TransportError};
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use openshell_runtime::facts::Endpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::server::WebPkiClientVerifier;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::TlsAcceptor;

    fn testdata(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/tls")
            .join(rel)
    }

    /// A dockerd stand-in with `--tlsverify`: TLS on loopback, client certificates required,
    /// one `/_ping` answer per connection, at most `connections` connections.
    async fn tls_engine(connections: usize) -> (u16, tokio::task::JoinHandle<()>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in certificates(&testdata("ca.pem")).unwrap_or_else(|e| panic!("{e}")) {
            roots.add(c).unwrap_or_else(|e| panic!("{e}"));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let key = PrivateKeyDer::from_pem_file(testdata("server-key.pem"))
            .unwrap_or_else(|e| panic!("{e}"));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                certificates(&testdata("server-cert.pem")).unwrap_or_else(|e| panic!("{e}")),
                key,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let task = tokio::spawn(async move {
            for _ in 0..connections {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                    )
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        (port, task)
    }

    fn target(port: u16, material: TlsMaterial) -> Target {
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: true,
        };
        Target::new(endpoint).with_tls(material)
    }

    async fn ping(target: &Target) -> Result<Bytes, TransportError> {
        let req = hyper::Request::get("/_ping")
            .body(Empty::<Bytes>::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let res = transport::send(target, req).await?;
        Ok(res
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_bytes())
    }

    #[tokio::test]
    async fn speaks_tls_with_a_client_certificate_and_verifies_the_engine() {
        let (port, engine) = tls_engine(2).await;
        let material = TlsMaterial::load(&testdata("client"), "DOCKER_CERT_PATH")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(material.client_auth());
        let body = ping(&target(port, material))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&body[..], b"OK");

        // An engine whose certificate another CA signed is refused, naming the CA file.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(testdata("other-ca.pem"), other.path().join(CA_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        let untrusted = TlsMaterial::load(other.path(), "test").unwrap_or_else(|e| panic!("{e}"));
        let err = ping(&target(port, untrusted))
            .await
            .err()
            .unwrap_or_else(|| panic!("an engine signed by another CA was trusted"));
        assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
        let shown = err.to_string();
        assert!(
            shown.contains("ca.pem") && shown.contains("127.0.0.1"),
            "{shown}"
        );
        engine.abort();
    }

    #[tokio::test]
    async fn podmans_named_files_verify_against_the_ca_or_the_systems_trust() {
        let (port, engine) = tls_engine(3).await;
        let client = testdata("client");
        let files = TlsFiles {
            ca: Some(client.join(CA_FILE)),
            cert: Some(client.join(CERT_FILE)),
            key: Some(client.join(KEY_FILE)),
        };
        let material =
            TlsMaterial::from_files(&files, "connection \"box\"").unwrap_or_else(|e| panic!("{e}"));
        assert!(material.client_auth());
        let body = ping(&target(port, material))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&body[..], b"OK");

        // Without a CA the system's trusted CAs decide, and they do not know the test CA: the
        // engine is refused (or, on a machine without a trust store, the material is).
        let no_ca = TlsFiles {
            ca: None,
            ..files.clone()
        };
        match TlsMaterial::from_files(&no_ca, "connection \"box\"") {
            Ok(m) => {
                assert_eq!(m.trust(), "the system's trusted CAs");
                let err = ping(&target(port, m))
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("an engine the system does not trust was trusted"));
                assert!(
                    err.to_string().contains("the system's trusted CAs"),
                    "{err}"
                );
            }
            Err(e) => assert!(
                matches!(e, TlsError::NoSystemRoots { .. }) && e.to_string().contains("TLSCA"),
                "{e}"
            ),
        }

        // Half a pair names what is there and where it was named.
        let half = TlsFiles { key: None, ..files };
        let err = TlsMaterial::from_files(&half, "connection \"box\"")
            .err()
            .unwrap_or_else(|| panic!("a certificate without its key was accepted"));
        assert!(
            matches!(&err, TlsError::Unpaired { present, missing } if present.ends_with("cert.pem") && missing.contains("connection \"box\"")),
            "{err:?}"
        );
        engine.abort();
    }

    #[tokio::test]
    async fn an_engine_that_wants_a_client_certificate_says_so() {
        let (port, engine) = tls_engine(1).await;
        let files = TlsFiles {
            ca: Some(testdata("ca.pem")),
            ..TlsFiles::default()
        };
        let material =
            TlsMaterial::from_files(&files, "connection \"box\"").unwrap_or_else(|e| panic!("{e}"));
        let err = ping(&target(port, material))
            .await
            .err()
            .unwrap_or_else(|| {
                panic!("an engine requiring a client certificate answered without one")
            });
        assert!(
            matches!(&err, TransportError::TlsAlert { alert, .. } if alert == "CertificateRequired"),
            "{err:?}"
        );
        assert!(err.to_string().contains("TLSCert and TLSKey"), "{err}");
        engine.abort();
    }

    /// A device or a FIFO named as a PEM file is refused, not read: reading would never end.
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("fifo.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(made.success());
        let fifo = fifo.display().to_string();
        for path in ["/dev/zero", "/dev/null", fifo.as_str()] {
            let files = TlsFiles {
                ca: Some(PathBuf::from(path)),
                ..TlsFiles::default()
            };
            let err = TlsMaterial::from_files(&files, "x").err();
            assert!(
                matches!(&err, Some(TlsError::Read { path: p, source }) if p == path && source.to_string().contains("not a regular file")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn missing_or_unpaired_material_names_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        let no_ca = TlsMaterial::load(d, "DOCKER_CERT_PATH").err();
        assert!(
            matches!(&no_ca, Some(TlsError::NoCa { path, .. }) if path.ends_with("ca.pem")),
            "{no_ca:?}"
        );
        std::fs::copy(testdata("ca.pem"), d.join(CA_FILE)).unwrap_or_else(|e| panic!("{e}"));
        let server_only = TlsMaterial::load(d, "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(!server_only.client_auth());
        std::fs::copy(testdata("client/cert.pem"), d.join(CERT_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        let unpaired = TlsMaterial::load(d, "x").err();
        assert!(
            matches!(&unpaired, Some(TlsError::Unpaired { missing, .. }) if missing.ends_with("key.pem")),
            "{unpaired:?}"
        );
        std::fs::write(d.join(KEY_FILE), "not a key").unwrap_or_else(|e| panic!("{e}"));
        let garbage = TlsMaterial::load(d, "x").err();
        assert!(
            matches!(
                &garbage,
                Some(TlsError::Pem {
                    what: "private key",
                    ..
                })
            ),
            "{garbage:?}"
        );
    }
}
