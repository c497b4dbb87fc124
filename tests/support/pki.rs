//! Test PKI and TLS servers on loopback: CAs, leaf certificates and chains made with rcgen,
//! written to a scratch directory the test owns and removes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use super::Scratch;

/// A certificate authority (root or intermediate).
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's own certificate as a server would send it (intermediates only).
    pub der: CertificateDer<'static>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

/// A server's certificate chain and key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Vec<u8>,
}

impl Ca {
    pub fn root(name: &str) -> Ca {
        let issuer =
            CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().expect("key"))
                .expect("root");
        let der = issuer.der().clone();
        Ca { issuer, der }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let issuer = CertifiedIssuer::signed_by(
            ca_params(name),
            KeyPair::generate().expect("key"),
            &self.issuer,
        )
        .expect("intermediate");
        let der = issuer.der().clone();
        Ca { issuer, der }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `sans` (names or IPs); `expired` puts its validity in 2020.
    pub fn leaf(&self, sans: &[&str], expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf");
        params
            .distinguished_name
            .push(DnType::CommonName, sans.first().copied().unwrap_or("leaf"));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: key.serialize_der(),
        }
    }

    /// A leaf followed by this (intermediate) CA's certificate, as servers send it.
    pub fn leaf_with_chain(&self, sans: &[&str]) -> Leaf {
        let mut leaf = self.leaf(sans, false);
        leaf.chain.push(self.der.clone());
        leaf
    }

    pub fn write(&self, scratch: &Scratch, file: &str) -> PathBuf {
        scratch.write(file, &self.pem())
    }
}

pub fn server_config(leaf: &Leaf, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), key)
            .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What a TLS test server saw of one client.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
}

/// A TLS server on 127.0.0.1 for at most `max` connections; it reports each client's SNI and
/// ALPN on the channel and closes after the handshake.
pub async fn tls_server(
    config: Arc<ServerConfig>,
    max: usize,
) -> (SocketAddr, tokio::sync::mpsc::Receiver<Hello>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel(max.max(1));
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        for _ in 0..max {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let accepted =
                    tokio::time::timeout(std::time::Duration::from_secs(5), acceptor.accept(tcp))
                        .await;
                if let Ok(Ok(tls)) = accepted {
                    let conn = tls.get_ref().1;
                    let hello = Hello {
                        sni: conn.server_name().map(str::to_string),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    };
                    let _ = tx.send(hello).await;
                }
            });
        }
    });
    (addr, rx)
}
