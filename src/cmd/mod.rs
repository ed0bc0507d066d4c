//! One module per subcommand: its flags and how it runs.

pub mod billing;
pub mod check_truth;
pub mod export;
pub mod ingest;
pub mod loadgen;
pub mod query;
pub mod rollup;
pub mod token;

use std::io::IsTerminal;

use crate::config::{LogConfig, LogFormat};

/// SIGINT (Ctrl-C) or SIGTERM (what service managers send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Logs to stderr in `[log] format`; `ADCLICK_LOG` sets the filter (default `info`). Text is
/// coloured only when stderr is a terminal, so log files and pipelines get no escape codes.
pub fn init_logging(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ADCLICK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
