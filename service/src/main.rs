//! `tether-service`: run the cloud service, or manage its accounts and licenses.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tether_proto::Secret;
use tether_service::config::{DataDirArg, LogFormat, ServeArgs};
use tether_service::users::{self, Role};
use tether_service::{Application, ServeConfig, db, labels, licenses};

/// The Tether cloud service: pairing tokens, IoT DNS, activation and device sessions.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service until SIGTERM or SIGINT.
    Serve(Box<ServeArgs>),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage device licenses.
    #[command(subcommand)]
    License(LicenseCommand),
    /// The service's TLS material.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Ask a running service whether it is ready (`GET /readyz`); exits 0 when it is,
    /// 1 otherwise. For container health checks, where there is no curl.
    Healthcheck {
        /// The service's API address.
        #[arg(
            long,
            env = "TETHER_HEALTHCHECK_ADDR",
            default_value = "127.0.0.1:8080"
        )]
        addr: String,
        /// Speak HTTPS, trusting this PEM CA (the data dir's tls/ca.pem for a local CA)
        #[arg(long, env = "TETHER_HEALTHCHECK_CA")]
        ca: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from the first line of standard input.
    Add {
        /// Account name (letters, digits, '.', '_', '-').
        name: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Print the local CA certificate (PEM) that devices and clients must trust, creating
    /// the CA when the data dir has none yet (as `serve` does on its first start).
    Ca {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Start a rotation of the local CA: a new CA, with the current one kept as the
    /// previous CA and trusted through a cross certificate until it is retired. Takes
    /// effect when the service next starts; retire the previous CA only after every
    /// device has been online for longer than IoT DNS's TTL (--dns-ttl) since.
    RotateCa {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// End a rotation: delete the previous CA and its cross certificate. Takes effect
    /// when the service next starts.
    RetireCa {
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
enum LicenseCommand {
    /// Issue device identities; prints one JSON object per line: {"uuid", "authkey",
    /// "product_key", "setup_code", "qr", "pairing_verifier"}. The setup code goes on the
    /// device's label (as text and as the QR code of "qr"); the device's host config gets
    /// the uuid, authkey, product key and pairing verifier, never the code.
    Issue {
        /// Product key (16 letters or digits); the product is created if new.
        #[arg(long)]
        product_key: String,
        /// How many identities (1-1000).
        #[arg(long)]
        count: u32,
        /// Also draw each label's QR code on stderr.
        #[arg(long)]
        qr: bool,
        /// Write each label's QR code to DIR/UUID.svg and DIR/UUID.png.
        #[arg(long, value_name = "DIR")]
        qr_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        data: DataDirArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format.unwrap_or_default(),
        _ => LogFormat::Pretty,
    };
    init_tracing(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = ServeConfig::from_args(*args)?;
            let app = Application::build(config).await?;
            app.run(shutdown_signal()).await
        }
        Command::User(UserCommand::Add { name, admin, data }) => {
            let password = read_password()?;
            let pool = db::open(&data.resolve(), data.database_url().as_ref()).await?;
            let role = if admin { Role::Admin } else { Role::User };
            users::create(&pool, &name, &password, role).await?;
            eprintln!("created user {name:?}");
            Ok(())
        }
        Command::License(LicenseCommand::Issue {
            product_key,
            count,
            qr,
            qr_dir,
            data,
        }) => {
            if let Some(dir) = &qr_dir {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let pool = db::open(&data.resolve(), data.database_url().as_ref()).await?;
            if count > 20 {
                eprintln!("making {count} setup codes (Argon2id for each)…");
            }
            for license in licenses::issue(&pool, &product_key, count).await? {
                println!("{}", serde_json::to_string(&license)?);
                write_label(&license, qr, qr_dir.as_deref())?;
            }
            Ok(())
        }
        Command::Tls(TlsCommand::Ca { data }) => {
            print!("{}", tether_service::tls::local_ca_pem(&data.resolve())?);
            Ok(())
        }
        Command::Tls(TlsCommand::RotateCa { data }) => {
            tether_service::tls::rotate_local_ca(&data.resolve())?;
            eprintln!(
                "rotated: restart the service to serve the new CA (IoT DNS then hands out both); \
                 retire the previous one with `tether-service tls retire-ca` once devices have \
                 looked it up"
            );
            Ok(())
        }
        Command::Tls(TlsCommand::RetireCa { data }) => {
            tether_service::tls::retire_previous_ca(&data.resolve())?;
            eprintln!("retired: restart the service to serve the new CA alone");
            Ok(())
        }
        Command::Healthcheck { addr, ca } => healthcheck(&addr, ca.as_deref()).await,
    }
}

/// A license's QR code, drawn on stderr and/or written as SVG and PNG.
fn write_label(
    license: &licenses::License,
    draw: bool,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let payload = license.qr.expose();
    if draw {
        eprintln!(
            "{}\n{} setup code {}\n",
            labels::terminal(payload)?,
            license.uuid,
            license.setup_code.expose()
        );
    }
    if let Some(dir) = dir {
        for (ext, bytes) in [
            ("svg", labels::svg(payload)?.into_bytes()),
            ("png", labels::png(payload)?),
        ] {
            let path = dir.join(format!("{}.{ext}", license.uuid));
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// `GET /readyz` over plain HTTP/1.0; ready means a 200 within 5 s.
async fn healthcheck(addr: &str, ca: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn ask(
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        addr: &str,
    ) -> anyhow::Result<Vec<u8>> {
        stream
            .write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    }
    let tls = ca.map(tether_service::tls::client_trusting).transpose()?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("nothing answers on {addr}"))?;
        let Some(tls) = tls else {
            return ask(stream, addr).await;
        };
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .with_context(|| format!("{host} is not a server name"))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS with {addr} failed"))?;
        ask(stream, addr).await
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .context("no answer within 5 s")??;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ready");
        Ok(())
    } else {
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        bail!("not ready: {status} {body}")
    }
}

fn read_password() -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(Secret::new(password))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}
