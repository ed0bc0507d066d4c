//! TLS for adclick's clients (remote_write, the rollup's Prometheus reads, S3, Redis): the
//! `[… .tls]` tables an operator writes — a private CA to trust beside the system roots, a client
//! certificate for mutual TLS — checked and read once at start, so a missing or wrong file is a
//! clear error naming the file before any connection is tried. Each client library takes the
//! loaded PEM bytes in its own form; the conversions live with each client.
//!
//! Kafka is not configured here: librdkafka reads its own files (`ssl.ca.location`,
//! `ssl.certificate.location`, …) through `[kafka.properties]`.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// A client's TLS files, as written in the configuration. Every field is optional: the default
/// trusts the system's roots (or the client library's bundled ones) and sends no certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file of CA certificates to trust in addition to the system roots: the private CA
    /// that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) presented to servers that ask for one (mutual TLS). Needs
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// What [`ClientTls::load`] read: PEM bytes, each checked to hold what it should.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LoadedTls {
    /// The CA certificates, PEM, when a `ca_file` was configured.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and key, PEM, when configured.
    pub identity: Option<Identity>,
}

/// A client certificate chain and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Key material never reaches logs.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("identity", &self.identity)
            .finish()
    }
}

/// A TLS file that cannot be used, naming it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Content { path: PathBuf, what: String },
    #[error("{client} over TLS cannot use {what}")]
    Unsupported {
        client: &'static str,
        what: &'static str,
    },
    #[error("cert_file and key_file go together: {given} is set, {missing} is not")]
    HalfIdentity {
        given: &'static str,
        missing: &'static str,
    },
}

impl ClientTls {
    /// Reads and checks the configured files: the CA file must hold at least one certificate,
    /// the client certificate at least one and its key one private key.
    pub fn load(&self) -> Result<LoadedTls, TlsError> {
        let ca_pem = match &self.ca_file {
            Some(path) => {
                let pem = read(path)?;
                certificates(path, &pem)?;
                Some(pem)
            }
            None => None,
        };
        let identity = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::HalfIdentity {
                    given: "cert_file",
                    missing: "key_file",
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::HalfIdentity {
                    given: "key_file",
                    missing: "cert_file",
                });
            }
            (Some(cert), Some(key)) => {
                let cert_pem = read(cert)?;
                certificates(cert, &cert_pem)?;
                let key_pem = read(key)?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Content {
                    path: key.clone(),
                    what: format!("no PEM private key ({e})"),
                })?;
                Some(Identity { cert_pem, key_pem })
            }
        };
        Ok(LoadedTls { ca_pem, identity })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file; an error when there are none or one does not parse.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Content {
            path: path.to_path_buf(),
            what: format!("not a PEM certificate file ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Content {
            path: path.to_path_buf(),
            what: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

impl LoadedTls {
    /// `builder` trusting the configured CA (beside its bundled roots) and presenting the client
    /// certificate, when configured.
    #[cfg(feature = "reqwest")]
    pub fn apply_to_reqwest(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, reqwest::Error> {
        if let Some(ca_pem) = &self.ca_pem {
            for ca in reqwest::Certificate::from_pem_bundle(ca_pem)? {
                builder = builder.add_root_certificate(ca);
            }
        }
        if let Some(identity) = &self.identity {
            let mut pem = identity.cert_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&identity.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(builder)
    }
}

/// Installs rustls' process-wide crypto provider (aws-lc-rs) unless one is installed already.
/// Libraries that build their rustls configuration with the process default (the Redis client)
/// need it: with both of rustls' providers compiled into the binary (reqwest brings ring, the AWS
/// SDK aws-lc-rs), rustls will not pick one by itself and panics at the first TLS connection.
#[cfg(feature = "rustls-provider")]
pub fn install_crypto_provider() {
    // Err means another provider was installed first, which serves as well.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn nothing_configured_loads_nothing() {
        assert_eq!(ClientTls::default().load().unwrap(), LoadedTls::default());
    }

    #[test]
    fn a_ca_file_and_an_identity_load_and_their_key_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let tls = ClientTls {
            ca_file: Some(write(dir.path(), "ca.pem", &cert.pem())),
            cert_file: Some(write(dir.path(), "c.pem", &cert.pem())),
            key_file: Some(write(dir.path(), "k.pem", &key.serialize_pem())),
        };
        let loaded = tls.load().unwrap();
        assert_eq!(loaded.ca_pem.as_deref(), Some(cert.pem().as_bytes()));
        let shown = format!("{loaded:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }

    #[test]
    fn bad_files_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = ClientTls {
            ca_file: Some(missing.clone()),
            ..ClientTls::default()
        }
        .load()
        .unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let junk = write(dir.path(), "junk.pem", "not a certificate\n");
        let err = ClientTls {
            ca_file: Some(junk),
            ..ClientTls::default()
        }
        .load()
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("junk.pem: holds no PEM certificate"),
            "{err}"
        );

        let err = ClientTls {
            cert_file: Some(missing),
            ..ClientTls::default()
        }
        .load()
        .unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn it_reads_from_toml() {
        let tls: ClientTls = toml::from_str("ca_file = \"/etc/ssl/private-ca.pem\"").unwrap();
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(Path::new("/etc/ssl/private-ca.pem"))
        );
        assert!(toml::from_str::<ClientTls>("ca = \"x\"").is_err());
    }
}
