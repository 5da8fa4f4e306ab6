//! `chartlink-sandbox`: run the local SMART-on-FHIR EHR. See the library docs for what it serves.

use std::net::SocketAddr;
use std::path::PathBuf;

use chartlink_sandbox::{Config, ExternalAuth, FaultConfig, Sandbox};
use clap::Parser;

/// A local SMART-on-FHIR EHR for developing and testing patient apps.
#[derive(Debug, Parser)]
#[command(name = "chartlink-sandbox", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seed of the synthetic data and of injected faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// FHIR R4 data to serve: Bundles, resources or NDJSON; a file or a directory (repeatable).
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Serve only --data, without the generated demo family.
    #[arg(long)]
    no_demo_data: bool,
    /// Keep all state in this SQLite file (created and filled on first use).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Add a patient with about this many resources (login large / large-demo), e.g. 50000.
    #[arg(long)]
    large_patient: Option<usize>,
    /// Put this OpenID Connect issuer in front of the FHIR API instead of the sandbox's own authorization server:
    /// its JWT access tokens (verified with its JWKS) open the API, the SMART configuration names its endpoints.
    #[arg(long)]
    external_issuer: Option<String>,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: i64,
    /// Allow Observation searches without a category (Epic refuses them; so does the sandbox by default).
    #[arg(long)]
    no_category_rule: bool,
    /// Added latency of every FHIR request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Share of FHIR requests answered 500/503 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Share of FHIR requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    fault_rate_limit: f64,
    /// Share of FHIR responses whose connection is cut mid-body.
    #[arg(long, default_value_t = 0.0)]
    fault_reset_rate: f64,
    /// Share of FHIR responses with truncated JSON.
    #[arg(long, default_value_t = 0.0)]
    fault_truncate_rate: f64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = Config {
        addr: args.addr,
        seed: args.seed,
        data: args.data,
        demo_data: !args.no_demo_data,
        large_patient: args.large_patient,
        db: args.db,
        token_lifetime: args.token_lifetime,
        require_observation_category: !args.no_category_rule,
        external_auth: args.external_issuer.as_deref().map(ExternalAuth::new),
        faults: FaultConfig {
            latency_ms: args.fault_latency_ms,
            error_rate: args.fault_error_rate,
            rate_limit_rate: args.fault_rate_limit,
            retry_after_secs: 1,
            reset_rate: args.fault_reset_rate,
            truncate_rate: args.fault_truncate_rate,
            path_prefix: None,
        },
        ..Config::default()
    };
    if !config.addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {} - the sandbox has no real security; keep it on loopback",
            config.addr
        );
    }
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chartlink-sandbox: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", sandbox.banner());
    println!("Press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    std::process::ExitCode::SUCCESS
}
