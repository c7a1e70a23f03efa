//! `jpki-ca`: the reference prefectural CA (a test peer for the kiosk; loopback only).
//!
//! `jpki-ca serve --dir DIR --listen 127.0.0.1:PORT [--tls-listen 127.0.0.1:PORT]
//! [--poll-delay-ms N] [--hostname NAME]` prints one line
//! `jpki-ca listening http=ADDR [https=ADDR]` on stdout once both listeners are bound
//! (so port 0 works), then serves until killed. `jpki-ca init --dir DIR` only creates the
//! keys and certificates. Exit codes: 0 normal, 1 start-up failure, 2 usage error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jpki_kiosk::ca::{server, Ca, Config};

#[derive(Parser)]
#[command(name = "jpki-ca", about = "Reference prefectural CA for jpki-kiosk (CMP over HTTP/HTTPS)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve CMP, CRLs and registry notices.
    Serve {
        /// CA directory (created on first start).
        #[arg(long)]
        dir: PathBuf,
        /// Plain HTTP listen address (loopback).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// HTTPS listen address (client certificate required).
        #[arg(long)]
        tls_listen: Option<SocketAddr>,
        /// Answer issuance with `waiting` and release certificates after this delay.
        #[arg(long, default_value_t = 0)]
        poll_delay_ms: u64,
        /// Host name for CRL URLs and the TLS certificate (default: the listen address).
        #[arg(long)]
        hostname: Option<String>,
        /// CRL lifetime (thisUpdate to nextUpdate) in seconds.
        #[arg(long, default_value_t = 86_400)]
        crl_lifetime_s: i64,
    },
    /// Create the CA directory (keys, certificates, PBM secret) and exit.
    Init {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Extra host name for the TLS certificate.
        #[arg(long)]
        hostname: Option<String>,
    },
}

fn loopback_only(addr: &SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(addr.ip().is_loopback(), "{addr}: the reference CA listens on loopback only");
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(e) = run(cli) {
        eprintln!("jpki-ca: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Init { dir, hostname } => {
            let mut config = Config::new(dir);
            config.hostnames.extend(hostname);
            Ca::open(config).context("creating the CA")?;
            println!("jpki-ca initialised");
            Ok(())
        }
        Cmd::Serve { dir, listen, tls_listen, poll_delay_ms, hostname, crl_lifetime_s } => {
            loopback_only(&listen)?;
            if let Some(t) = &tls_listen {
                loopback_only(t)?;
            }
            anyhow::ensure!(crl_lifetime_s > 60, "--crl-lifetime-s must exceed 60");
            let mut config = Config::new(dir);
            config.poll_delay_ms = poll_delay_ms;
            config.crl_lifetime_secs = crl_lifetime_s;
            config.hostnames.extend(hostname.clone());
            let ca = Arc::new(Ca::open(config).context("opening the CA")?);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the runtime")?;
            rt.block_on(async move {
                let http = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
                let http_addr = http.local_addr()?;
                let host = hostname.unwrap_or_else(|| http_addr.ip().to_string());
                ca.set_base_url(format!("http://{host}:{}", http_addr.port()));
                let mut line = format!("jpki-ca listening http={http_addr}");
                if let Some(t) = tls_listen {
                    let https = tokio::net::TcpListener::bind(t).await.with_context(|| format!("binding {t}"))?;
                    line += &format!(" https={}", https.local_addr()?);
                    let cfg = server::tls_config(&ca)?;
                    tokio::spawn(server::run_https(ca.clone(), https, cfg));
                }
                tokio::spawn(server::run_crl_schedule(ca.clone()));
                println!("{line}");
                use std::io::Write;
                std::io::stdout().flush()?;
                server::run_http(ca, http).await;
                Ok(())
            })
        }
    }
}
