//! The TLS side of the doctor's client (rustls with the `ring` provider): which
//! certificates are trusted, and what a failed handshake means in plain words.
//!
//! Trusted: the system's store (as curl and most non-browser clients on the machine use),
//! plus `--cacert FILE`. `--insecure` skips verification but still runs it, so the report
//! can say loudly what a verifying client would have refused.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The client's TLS settings, built once from the arguments.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    /// With `--insecure`: what verification would have said, per server name.
    pub skipped: Option<Arc<SkippingVerifier>>,
    /// How many trust anchors came from the system and from `--cacert`.
    pub system_roots: usize,
    pub extra_roots: usize,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("insecure", &self.skipped.is_some())
            .field("system_roots", &self.system_roots)
            .field("extra_roots", &self.extra_roots)
            .finish()
    }
}

impl Tls {
    /// The system's roots plus the certificates of `cacert`; `insecure` skips verification.
    /// An unreadable `cacert` or one without certificates is a usage error.
    pub fn new(cacert: Option<&Path>, insecure: bool) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        // Certificates the system store cannot parse are skipped, as curl does.
        let native = rustls_native_certs::load_native_certs();
        let (system_roots, _) = roots.add_parsable_certificates(native.certs);
        let mut extra_roots = 0;
        if let Some(path) = cacert {
            let pem = std::fs::read(path)
                .with_context(|| format!("--cacert {}: cannot read", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| {
                    format!("--cacert {}: not a PEM certificate", path.display())
                })?;
                roots.add(cert).with_context(|| {
                    format!(
                        "--cacert {}: a certificate cannot be used as a trust anchor",
                        path.display()
                    )
                })?;
                extra_roots += 1;
            }
            if extra_roots == 0 {
                bail!(
                    "--cacert {}: no `-----BEGIN CERTIFICATE-----` block in the file",
                    path.display()
                );
            }
        }
        let roots = Arc::new(roots);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS: no protocol version available")?;
        let (config, skipped) = if insecure {
            let verifier = Arc::new(SkippingVerifier {
                // Empty roots make the builder fail: then every certificate is untrusted.
                inner: WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .ok(),
                provider,
                seen: Mutex::new(Vec::new()),
                checked: AtomicUsize::new(0),
            });
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            (config, Some(verifier))
        } else {
            let config = builder.with_root_certificates(roots).with_no_client_auth();
            (config, None)
        };
        Ok(Tls {
            config: Arc::new(config),
            skipped,
            system_roots,
            extra_roots,
        })
    }

    /// With `--insecure`: how many certificates were accepted without verification.
    pub fn unverified(&self) -> usize {
        self.skipped
            .as_ref()
            .map_or(0, |s| s.checked.load(Ordering::Relaxed))
    }

    /// With `--insecure`: each certificate problem verification would have reported.
    pub fn skipped_problems(&self) -> Vec<String> {
        self.skipped
            .as_ref()
            .and_then(|s| s.seen.lock().ok().map(|v| v.clone()))
            .unwrap_or_default()
    }
}

/// `--insecure`: accepts any certificate, after running the real verification to record
/// what it would have refused. Handshake signatures are still checked, so the peer does
/// hold the key of the certificate it shows.
#[derive(Debug)]
pub struct SkippingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Vec<String>>,
    /// How many certificates were presented (0: no handshake got that far).
    checked: AtomicUsize,
}

impl ServerCertVerifier for SkippingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.checked.fetch_add(1, Ordering::Relaxed);
        let problem = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .err()
                .map(|e| TlsProblem::of(&e).describe(&e)),
            None => Some("no trust anchor is installed on this machine".to_owned()),
        };
        if let (Some(p), Ok(mut seen)) = (problem, self.seen.lock()) {
            let line = format!("{}: {p}", server_name.to_str());
            if !seen.contains(&line) {
                seen.push(line);
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What went wrong in a TLS handshake, by the fix it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The chain does not end at a trusted root: self-signed, a private CA, or a server
    /// that does not send its intermediates.
    UnknownIssuer,
    /// A CA certificate (`basicConstraints CA:TRUE`, what `openssl req -x509` makes by
    /// default) used as the server's own: webpki-based clients refuse it even when trusted.
    CaAsServerCert,
    /// Past its notAfter, which rustls reports (Unix seconds) when webpki gives it.
    Expired {
        not_after: Option<u64>,
    },
    NotYetValid,
    /// The certificate does not name the host that was asked for.
    NameMismatch,
    Revoked,
    /// The server answered something that is not TLS (often plain HTTP on that port).
    NotTls,
    /// The server ended the handshake with an alert (no common version or cipher, SNI
    /// unknown to it, or it wants a client certificate).
    Refused,
    /// Anything else rustls reports.
    Other,
}

impl TlsProblem {
    /// The stable code shown in JSON (`tls_problem`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownIssuer => "unknown_issuer",
            Self::CaAsServerCert => "ca_as_server_cert",
            Self::Expired { .. } => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NameMismatch => "name_mismatch",
            Self::Revoked => "revoked",
            Self::NotTls => "not_tls",
            Self::Refused => "handshake_refused",
            Self::Other => "handshake_failed",
        }
    }

    pub fn of(e: &rustls::Error) -> TlsProblem {
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => Self::UnknownIssuer,
                CertificateError::Expired => Self::Expired { not_after: None },
                CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                    not_after: Some(not_after.as_secs()),
                },
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Self::NameMismatch,
                CertificateError::Revoked => Self::Revoked,
                // webpki's `CaUsedAsEndEntity` reaches rustls only as an opaque `Other`.
                CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                    Self::CaAsServerCert
                }
                _ => Self::Other,
            },
            rustls::Error::InvalidMessage(_) | rustls::Error::PeerSentOversizedRecord => {
                Self::NotTls
            }
            rustls::Error::AlertReceived(_) => Self::Refused,
            _ => Self::Other,
        }
    }

    /// A short phrase with rustls' own words after it.
    fn describe(&self, e: &rustls::Error) -> String {
        let what = match self {
            Self::UnknownIssuer => {
                "the certificate is not issued by an authority this machine trusts"
            }
            Self::CaAsServerCert => {
                "the server presents a CA certificate (CA:TRUE, typically self-signed) as its own"
            }
            Self::Expired { .. } => "the certificate has expired",
            Self::NotYetValid => "the certificate is not valid yet",
            Self::NameMismatch => "the certificate is for another host name",
            Self::Revoked => "the certificate is revoked",
            Self::NotTls => "the server does not speak TLS on this port",
            Self::Refused => "the server refused the handshake",
            Self::Other => "the TLS handshake failed",
        };
        format!("{what} ({e})")
    }
}

/// The rustls error somewhere in `e`'s chain. `io::Error` hides its inner error from
/// `source()`, so it is opened with `get_ref()`.
pub fn find_error(e: &(dyn StdError + 'static)) -> Option<(TlsProblem, String)> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            let problem = TlsProblem::of(r);
            let text = problem.describe(r);
            return Some((problem, text));
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_error(inner) {
                return Some(found);
            }
        }
        current = err.source();
    }
    None
}
