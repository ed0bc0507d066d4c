//! A TLS terminator for tests: accepts TLS with the test PKI's server certificate and passes the
//! plain bytes to a server that speaks no TLS (tansu 0.6 accepts only plain TCP), as stunnel or
//! a load balancer would in production.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::pki::TestPki;

/// A running terminator; stops accepting when dropped.
pub struct TlsTerminator {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl TlsTerminator {
    /// Listens on `listener` (bound by the caller, so its port can be advertised before it
    /// starts) and forwards each connection to `upstream`.
    pub fn start(listener: std::net::TcpListener, pki: &TestPki, upstream: SocketAddr) -> Self {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.server_cert())
            .expect("server certificate")
            .collect::<Result<_, _>>()
            .expect("server certificate");
        let key = PrivateKeyDer::from_pem_file(pki.server_key()).expect("server key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here: that is its test.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
        TlsTerminator { addr, accept }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
