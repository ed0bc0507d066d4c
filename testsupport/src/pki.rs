//! Certificates for tests of TLS connections: a CA of the test's own, a server certificate it
//! signed for `localhost` and `127.0.0.1`, a client certificate for mutual TLS, and a second,
//! unrelated CA to play a client configured with the wrong one. Written as PEM files into a
//! temporary folder, dropped with it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// The files of a test PKI.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the CA, the server and client certificates and a wrong CA.
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir");
        let wrong = new_ca("someone else's CA");
        let ca = new_ca("adclick test CA");
        write(dir.path(), "ca.pem", &ca.pem());
        write(dir.path(), "wrong-ca.pem", &wrong.pem());

        let (server, server_key) = leaf(&ca, "adclick test server", true);
        write(dir.path(), "server.pem", &server);
        write(dir.path(), "server-key.pem", &server_key);
        let (client, client_key) = leaf(&ca, "adclick test client", false);
        write(dir.path(), "client.pem", &client);
        write(dir.path(), "client-key.pem", &client_key);
        TestPki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }
    /// A CA that signed nothing here.
    pub fn wrong_ca(&self) -> PathBuf {
        self.file("wrong-ca.pem")
    }
    /// The server certificate (for `localhost` and 127.0.0.1) and its key.
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.file("server-key.pem")
    }
    /// A client certificate and its key.
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.file("client-key.pem")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate signed by `ca`, PEM, and its key, PEM.
fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, name: &str, server: bool) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).expect("write PEM");
}
