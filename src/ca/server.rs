//! The CA's HTTP front: a plain listener and an HTTPS listener that requires a client
//! certificate issued by the LGWAN infrastructure CA (the kiosk's RA certificate).
//!
//! Routes (both listeners):
//! - `POST /pkix/`, `/pkix`, `/.well-known/cmp[/...]` with `Content-Type: application/pkixcmp`:
//!   CMP (RFC 6712 / RFC 9480 §3); 415 for another type, 413 over 64 KiB, 400 if undecodable;
//! - `GET /crl/sign.crl`, `/crl/auth.crl`, `/crl/<municipality>/{sign,auth}.crl`: DER CRLs;
//! - `POST /registry/notice` (JSON): 異動 notices ([`super::registry`]).
//!
//! The CA work runs on blocking threads; this module only moves bytes and maps outcomes to
//! HTTP statuses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::cmp::CmpOutcome;
use super::{Ca, CaError};
use crate::pki::jpki_profile::CertProfile;

/// Largest request body accepted (a CMP request with two certificate requests and an RA
/// chain is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The rustls server configuration: our TLS certificate, client certificates required and
/// verified against the infrastructure CA.
pub fn tls_config(ca: &Ca) -> Result<Arc<ServerConfig>, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let ca_der = der::Encode::to_der(&ca.material.tls_ca.cert)?;
    roots.add(CertificateDer::from(ca_der)).map_err(|e| CaError::Tls(e.to_string()))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| CaError::Tls(e.to_string()))?;
    let chain = ca.material.tls_chain_der()?.into_iter().map(CertificateDer::from).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.material.tls_server_key.to_vec()));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| CaError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

fn reply(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(text(StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB"));
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(text(StatusCode::PAYLOAD_TOO_LARGE, "request body over 64 KiB"))
        }
        Err(_) => Err(text(StatusCode::BAD_REQUEST, "request body unreadable")),
    }
}

fn content_type_is(req: &Request<Incoming>, want: &str) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(want))
        .unwrap_or(false)
}

fn is_cmp_path(path: &str) -> bool {
    path == "/pkix/" || path == "/pkix" || path == "/.well-known/cmp" || path.starts_with("/.well-known/cmp/")
}

/// `/crl/sign.crl` → (Signing, None); `/crl/131016/auth.crl` → (UserAuth, Some("131016")).
fn parse_crl_path(path: &str) -> Option<(CertProfile, Option<String>)> {
    let rest = path.strip_prefix("/crl/")?;
    let (muni, file) = match rest.split_once('/') {
        Some((m, f)) => (Some(m), f),
        None => (None, rest),
    };
    if let Some(m) = muni {
        if m.len() != 6 || !m.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let profile = CertProfile::from_str_name(file.strip_suffix(".crl")?)?;
    Some((profile, muni.map(str::to_owned)))
}

async fn route(ca: Arc<Ca>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if is_cmp_path(&path) {
        if method != Method::POST {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "CMP takes POST"));
        }
        if !content_type_is(&req, "application/pkixcmp") {
            return Ok(text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/pkixcmp"));
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        let outcome = tokio::task::spawn_blocking(move || ca.handle_cmp(&body)).await;
        return Ok(match outcome {
            Ok(CmpOutcome::Response(der)) => reply(StatusCode::OK, "application/pkixcmp", der),
            Ok(CmpOutcome::Malformed(why)) => text(StatusCode::BAD_REQUEST, why),
            Ok(CmpOutcome::Internal) | Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        });
    }
    if path.starts_with("/crl/") {
        if method != Method::GET && method != Method::HEAD {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "CRLs take GET"));
        }
        let Some((profile, muni)) = parse_crl_path(&path) else {
            return Ok(text(StatusCode::NOT_FOUND, "no such CRL"));
        };
        let crl = tokio::task::spawn_blocking(move || ca.current_crl(profile, muni.as_deref())).await;
        return Ok(match crl {
            Ok(Ok(c)) => reply(StatusCode::OK, "application/pkix-crl", Bytes::from(c.der.clone())),
            _ => text(StatusCode::INTERNAL_SERVER_ERROR, "CRL unavailable"),
        });
    }
    if path == "/registry/notice" {
        if method != Method::POST {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "notices take POST"));
        }
        if !content_type_is(&req, "application/json") {
            return Ok(text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"));
        }
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        let res = tokio::task::spawn_blocking(move || ca.registry_notice(&body)).await;
        return Ok(match res {
            Ok(Ok(r)) => reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&r).unwrap_or_default(),
            ),
            Ok(Err(CaError::BadNotice(why))) => text(StatusCode::BAD_REQUEST, &why),
            _ => text(StatusCode::INTERNAL_SERVER_ERROR, "notice not applied"),
        });
    }
    Ok(text(StatusCode::NOT_FOUND, "not found"))
}

async fn serve_conn<I>(ca: Arc<Ca>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| route(ca.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Accepts plain HTTP connections forever.
pub async fn run_http(ca: Arc<Ca>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        tracing::debug!(%peer, "http connection");
        tokio::spawn(serve_conn(ca.clone(), stream));
    }
}

/// Accepts HTTPS connections forever; handshakes without a valid client certificate fail.
pub async fn run_https(ca: Arc<Ca>, listener: TcpListener, config: Arc<ServerConfig>) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ca = ca.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_conn(ca, tls).await,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    ca.audit("anonymous", "tls-refused", &e.to_string());
                }
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Re-issues due CRLs once a minute.
pub async fn run_crl_schedule(ca: Arc<Ca>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let ca = ca.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || ca.refresh_due_crls()).await {
            tracing::error!(error = %e, "scheduled CRL re-issue failed");
        }
    }
}

/// Bound addresses, as printed for tests.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// HTTPS, if enabled.
    pub https: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_paths() {
        assert_eq!(parse_crl_path("/crl/sign.crl"), Some((CertProfile::Signing, None)));
        assert_eq!(parse_crl_path("/crl/131016/auth.crl"), Some((CertProfile::UserAuth, Some("131016".into()))));
        assert_eq!(parse_crl_path("/crl/13101/auth.crl"), None);
        assert_eq!(parse_crl_path("/crl/../sign.crl"), None);
        assert_eq!(parse_crl_path("/crl/x.crl"), None);
        assert!(is_cmp_path("/pkix/") && is_cmp_path("/.well-known/cmp") && !is_cmp_path("/pkix/x"));
    }
}
