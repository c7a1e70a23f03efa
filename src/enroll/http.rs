//! [`HttpTransport`]: CMP over HTTP(S) as RFC 6712/RFC 9480 describe it (POST,
//! `Content-Type: application/pkixcmp`), with reqwest's blocking client on
//! rustls, the kiosk's RA client certificate, and ONLY the configured roots.
//!
//! Retries re-send the identical bytes (same transactionID and nonces, so the
//! CA answers idempotently) on connection failures, timeouts and 502/503/504,
//! with bounded exponential backoff. TLS failures and other HTTP statuses are
//! not retried: repeating them cannot help. This module knows nothing of CMP
//! beyond the content type.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{EnrollError, Transport};

/// The CMP media type (RFC 6712 §3.4).
pub const CONTENT_TYPE: &str = "application/pkixcmp";

/// How often and how patiently a request is re-sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(4),
        }
    }
}

/// Settings of the HTTP transport.
#[derive(Clone)]
pub struct HttpConfig {
    /// e.g. `https://ca.pref.example.lg.jp/pkix/`.
    pub url: String,
    /// PEM roots the server's TLS certificate must chain to (nothing else is trusted).
    pub tls_roots_pem: Vec<u8>,
    /// The RA certificate followed by its private key, PEM (for HTTPS).
    pub client_identity_pem: Option<Zeroizing<Vec<u8>>>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Largest response accepted.
    pub max_response_bytes: usize,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &self.url)
            .field(
                "client_identity_pem",
                &self.client_identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl HttpConfig {
    /// Defaults: 5 s connect, 30 s per request, 3 attempts, 1 MiB limit.
    pub fn new(url: impl Into<String>) -> Self {
        HttpConfig {
            url: url.into(),
            tls_roots_pem: Vec::new(),
            client_identity_pem: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_response_bytes: 1 << 20,
        }
    }
}

/// CMP over HTTP(S).
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    url: reqwest::Url,
    retry: RetryPolicy,
    max_response_bytes: usize,
}

impl HttpTransport {
    /// Build the HTTP client. Fails on an unreadable PEM or URL.
    pub fn new(config: &HttpConfig) -> Result<Self, EnrollError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| EnrollError::Config(format!("CA URL: {e}")))?;
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !config.tls_roots_pem.is_empty() {
            for root in reqwest::Certificate::from_pem_bundle(&config.tls_roots_pem)
                .map_err(|e| EnrollError::Config(format!("TLS roots: {e}")))?
            {
                builder = builder.add_root_certificate(root);
            }
        }
        if let Some(pem) = &config.client_identity_pem {
            let id = reqwest::Identity::from_pem(pem)
                .map_err(|e| EnrollError::Config(format!("client identity: {e}")))?;
            builder = builder.identity(id);
        }
        let client = builder
            .build()
            .map_err(|e| EnrollError::Config(format!("HTTP client: {e}")))?;
        Ok(HttpTransport {
            client,
            url,
            retry: config.retry,
            max_response_bytes: config.max_response_bytes,
        })
    }

    fn attempt(&self, request: &[u8]) -> Result<Vec<u8>, Attempt> {
        let resp = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(request.to_vec())
            .send()
            .map_err(classify)?;
        let status = resp.status();
        let is_cmp = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(CONTENT_TYPE));
        // A CMP error message may come with a 4xx/5xx status: read it rather
        // than reporting a bare status.
        if !is_cmp {
            let code = status.as_u16();
            return Err(match code {
                502..=504 => Attempt::Retry(EnrollError::HttpStatus(code)),
                // A 2xx that is not CMP: a web server, not the CA, answered.
                200..=299 => Attempt::Fatal(EnrollError::Malformed(format!(
                    "HTTP {code} without {CONTENT_TYPE}"
                ))),
                _ => Attempt::Fatal(EnrollError::HttpStatus(code)),
            });
        }
        let mut body = Vec::new();
        resp.take(self.max_response_bytes as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    Attempt::Retry(EnrollError::Timeout)
                } else {
                    Attempt::Retry(EnrollError::Unreachable(e.to_string()))
                }
            })?;
        if body.len() > self.max_response_bytes {
            return Err(Attempt::Fatal(EnrollError::Malformed(format!(
                "response over {} bytes",
                self.max_response_bytes
            ))));
        }
        Ok(body)
    }
}

enum Attempt {
    Retry(EnrollError),
    Fatal(EnrollError),
}

/// Sort a reqwest error into TLS (not retried), timeout or unreachable.
fn classify(e: reqwest::Error) -> Attempt {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return Attempt::Fatal(EnrollError::Tls(t.to_string()));
        }
        // io::Error's source() skips the error it wraps (rustls's errors come
        // wrapped, sometimes twice), so step into it explicitly.
        source = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    if e.is_timeout() {
        Attempt::Retry(EnrollError::Timeout)
    } else {
        Attempt::Retry(EnrollError::Unreachable(error_chain(&e)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut s = e.source();
    while let Some(inner) = s {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        s = inner.source();
    }
    out
}

impl Transport for HttpTransport {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, EnrollError> {
        let attempts = self.retry.attempts.max(1);
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            match self.attempt(request) {
                Ok(body) => return Ok(body),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(e)) if attempt >= attempts => return Err(e),
                Err(Attempt::Retry(e)) => {
                    tracing::warn!(attempt, error = %e, "CMP request failed; re-sending the same message");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn transport(url: String, attempts: u32) -> HttpTransport {
        let mut c = HttpConfig::new(url);
        c.retry = RetryPolicy {
            attempts,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        };
        c.timeout = Duration::from_secs(5);
        HttpTransport::new(&c).unwrap()
    }

    /// A one-shot HTTP server on a loopback socket answering `replies` in turn.
    fn serve(replies: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<Vec<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/pkix/", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read headers + the 3-byte body the test sends.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"abc") {
                    let n = std::io::Read::read(&mut s, &mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                seen.push(got);
                s.write_all(reply).unwrap();
            }
            seen
        });
        (url, h)
    }

    #[test]
    fn retries_the_same_bytes_after_503_and_reads_cmp_body() {
        let (url, h) = serve(vec![
            b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/pkixcmp\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        ]);
        let body = transport(url, 3).exchange(b"abc").unwrap();
        assert_eq!(body, b"ok");
        let seen = h.join().unwrap();
        assert_eq!(seen.len(), 2);
        for req in &seen {
            let text = String::from_utf8_lossy(req).to_ascii_lowercase();
            assert!(text.starts_with("post /pkix/ "), "{text}");
            assert!(text.contains("content-type: application/pkixcmp"), "{text}");
            assert!(text.ends_with("abc"));
        }
    }

    #[test]
    fn non_cmp_4xx_is_not_retried() {
        let (url, h) = serve(vec![
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ]);
        assert!(matches!(
            transport(url, 3).exchange(b"abc"),
            Err(EnrollError::HttpStatus(404))
        ));
        assert_eq!(h.join().unwrap().len(), 1);
    }

    #[test]
    fn refused_connection_is_unreachable_after_bounded_attempts() {
        // Bind then drop: the port is very likely closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = transport(format!("http://127.0.0.1:{port}/pkix/"), 2)
            .exchange(b"abc")
            .unwrap_err();
        assert!(matches!(err, EnrollError::Unreachable(_)), "{err:?}");
    }
}
