use super::*;

fn cert(sans: &[&str], ca: &str, not_after: (i32, u8, u8)) -> CertificateDer<'static> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, sans[0]);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = rcgen::KeyPair::generate().unwrap();
    params.signed_by(&key, &issuer).unwrap().der().clone()
}

#[test]
fn cert_info_reads_names_sans_and_expiry() {
    let der = cert(
        &["ws.example.net", "10.1.2.3", "::1"],
        "Contoso TLS Inspection CA",
        (2030, 1, 1),
    );
    let info = cert_info(&der).unwrap();
    assert!(
        info.subject.contains("CN=ws.example.net"),
        "{}",
        info.subject
    );
    assert!(
        info.issuer.contains("CN=Contoso TLS Inspection CA"),
        "{}",
        info.issuer
    );
    assert_eq!(info.sans, ["ws.example.net", "10.1.2.3", "::1"]);
    assert_eq!(info.not_after, 1_893_456_000);
    assert_eq!(top_issuer(&[der]), "Contoso TLS Inspection CA");
    assert!(cert_info(b"not a certificate").is_none());
}

#[test]
fn out_of_date_names_the_certificate_and_the_date() {
    let chain = [
        cert(&["a.example"], "CA", (2030, 1, 1)),
        cert(&["old.example"], "CA", (2021, 6, 30)),
    ];
    let now = 1_700_000_000; // November 2023
    assert_eq!(
        out_of_date(&chain, now).unwrap(),
        "'old.example' expired on 2021-06-30T00:00:00Z"
    );
    let early = out_of_date(&chain[..1], 1_500_000_000).unwrap();
    assert!(
        early.contains("not valid before 2019-01-01") && early.contains("clock"),
        "{early}"
    );
    assert_eq!(out_of_date(&chain[..1], now), None);
}

#[test]
fn handshake_failures_say_what_the_peer_did() {
    use std::io::{Error, ErrorKind as Io};
    let alert = Error::new(
        Io::InvalidData,
        rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
    );
    let eof = Error::new(Io::UnexpectedEof, "tls handshake eof");
    let reset = Error::from(Io::ConnectionReset);
    for (e, says) in [
        (alert, "alert HandshakeFailure"),
        (eof, "closed the connection"),
        (reset, "closed the connection"),
    ] {
        let p = handshake_error(&e);
        assert_eq!(p.kind, ErrorKind::TlsHandshake);
        assert!(p.message.contains(says), "{}", p.message);
    }
}
