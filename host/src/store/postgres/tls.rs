//! TLS to PostgreSQL, with the rustls guard's HTTP client already uses.
//! Managed databases usually insist on it: `sslmode=require` in the URL
//! turns it on, the server's certificate checked against the public roots
//! and, for a private CA (or a self-signed server), `[store] ca_file`.
//! Without either, the connection is plain, as `libpq`'s default `prefer`
//! is in practice against a server whose certificate nothing vouches for.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;

/// The connector `config` and `ca_file` ask for (`None`: plain).
pub(super) fn connector(
    config: &tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    if config.get_ssl_mode() == SslMode::Disable
        || (config.get_ssl_mode() != SslMode::Require && ca_file.is_none())
    {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            StoreError::Pg(format!("[store] ca_file {}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no PEM certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(&e))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Pg(format!("setting up TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(tls)))
}
