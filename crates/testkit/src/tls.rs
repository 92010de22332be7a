//! A throwaway certificate authority: what tests (and `scripts/run`, through
//! `refer admin dev-ca`) give the bus so it runs with TLS as deployed. Never
//! for production: its key lives in memory for the life of the process.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl DevCa {
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Refer development CA (throwaway)");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA's certificate (PEM): what clients verify servers against.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for the host names or addresses `names` (PEM), and
    /// its key (PEM), good for a server and for a client (a NATS node is
    /// both on its routes; a service may present it for mutual TLS).
    pub fn issue(&self, names: &[&str]) -> Result<(String, String), rcgen::Error> {
        self.issue_valid(names, false)
    }

    /// A certificate as [`DevCa::issue`] makes, that expired in 2021 (for
    /// tests that an expired certificate is refused).
    pub fn issue_expired(&self, names: &[&str]) -> Result<(String, String), rcgen::Error> {
        self.issue_valid(names, true)
    }

    fn issue_valid(&self, names: &[&str], expired: bool) -> Result<(String, String), rcgen::Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        params.distinguished_name.push(DnType::CommonName, names[0].clone());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
