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
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

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

    /// What the test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        content_type: String,
        body: Vec<u8>,
    }

    /// A hyper HTTP/1 server on a loopback port answering with `replies`
    /// (status, content type, body) in turn, recording each request.
    fn serve(replies: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/pkix/", std_listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let replies = Arc::new(Mutex::new(replies.into_iter()));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((io, _)) = listener.accept().await else {
                        return;
                    };
                    let (log, replies) = (log.clone(), replies.clone());
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (log, replies) = (log.clone(), replies.clone());
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path().to_owned();
                                let content_type = req
                                    .headers()
                                    .get(hyper::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = req.into_body().collect().await?.to_bytes().to_vec();
                                log.lock().unwrap().push(Seen {
                                    method,
                                    path,
                                    content_type,
                                    body,
                                });
                                let (status, ct, text) = replies
                                    .lock()
                                    .unwrap()
                                    .next()
                                    .unwrap_or((500, "text/plain", ""));
                                let resp = hyper::Response::builder()
                                    .status(status)
                                    .header(hyper::header::CONTENT_TYPE, ct)
                                    .body(Full::new(Bytes::from_static(text.as_bytes())))
                                    .unwrap();
                                Ok::<_, hyper::Error>(resp)
                            }
                        },
                    );
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                            .await;
                    });
                }
            });
        });
        (url, seen)
    }

    #[test]
    fn retries_the_same_bytes_after_503_and_reads_cmp_body() {
        let (url, seen) = serve(vec![(503, "text/plain", "busy"), (200, CONTENT_TYPE, "ok")]);
        let body = transport(url, 3).exchange(b"abc").unwrap();
        assert_eq!(body, b"ok");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for req in &seen {
            assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/pkix/"));
            assert_eq!(req.content_type, CONTENT_TYPE);
            assert_eq!(req.body, b"abc");
        }
    }

    #[test]
    fn non_cmp_4xx_is_not_retried_and_cmp_error_bodies_are_read() {
        let (url, seen) = serve(vec![(404, "text/plain", "no")]);
        assert!(matches!(
            transport(url, 3).exchange(b"abc"),
            Err(EnrollError::HttpStatus(404))
        ));
        assert_eq!(seen.lock().unwrap().len(), 1);
        // A CMP message with an error status is still a CMP answer.
        let (url, _) = serve(vec![(400, CONTENT_TYPE, "cmp-error")]);
        assert_eq!(transport(url, 3).exchange(b"abc").unwrap(), b"cmp-error");
        // A web page with 200 is not the CA.
        let (url, _) = serve(vec![(200, "text/html", "<html>")]);
        assert!(matches!(
            transport(url, 3).exchange(b"abc"),
            Err(EnrollError::Malformed(_))
        ));
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
