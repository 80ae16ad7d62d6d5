//! TLS to engines on `tcp://`: the client side of dockerd's `--tlsverify`, from the material the
//! docker CLI uses (a directory with `ca.pem`, `cert.pem` and `key.pem`: `DOCKER_CERT_PATH`,
//! `~/.docker`, or a context's TLS store).
//!
//! The engine's certificate is always verified against `ca.pem`, and its name (host name or IP
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
    #[error("{present} is there but {missing} is not: a client certificate needs its key (and the key its certificate); add the missing file or remove both")]
    Unpaired {
        /// The file found.
        present: String,
        /// The file missing.
        missing: String,
    },
    /// rustls refused the material (a CA that is not a certificate, a key that does not match).
    #[error("the TLS material in {dir} was refused: {source}")]
    Refused {
        /// The directory.
        dir: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
}

/// A loaded TLS client configuration and where it came from.
#[derive(Clone)]
pub struct TlsMaterial {
    dir: PathBuf,
    origin: String,
    client_auth: bool,
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
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
        let refused = |source| TlsError::Refused {
            dir: dir.display().to_string(),
            source,
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(&ca)? {
            roots.add(cert).map_err(refused)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots);
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let config = match (cert.exists(), key.exists()) {
            (false, false) => builder.with_no_client_auth(),
            (true, true) => {
                let chain = certificates(&cert)?;
                let key_bytes = read(&key)?;
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
            (has_cert, _) => {
                let (present, missing) = if has_cert { (cert, key) } else { (key, cert) };
                return Err(TlsError::Unpaired {
                    present: present.display().to_string(),
                    missing: missing.display().to_string(),
                });
            }
        };
        let client_auth = cert.exists();
        Ok(TlsMaterial {
            dir: dir.to_path_buf(),
            origin: origin.to_string(),
            client_auth,
            config: Arc::new(config),
        })
    }

    /// The directory the material was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the directory was named.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether a client certificate is presented.
    pub fn client_auth(&self) -> bool {
        self.client_auth
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
    use crate::support::transport::{self, Target, TransportError};
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
