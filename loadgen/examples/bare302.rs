//! A bare axum server answering every `GET /click/{token}` with the same 302 and no work at all:
//! the baseline that loadgen's HTTP throughput and ingest's click path are measured against.
//!
//! `cargo run --release -p adclick-loadgen --example bare302 -- 127.0.0.1:8099`

#![allow(clippy::unwrap_used)] // An example: a panic with the failed call is how it stops.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

/// The same allocator as the `adclick` binary, so that the comparison with ingest is of the work
/// done per click, not of the allocators.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn redirect() -> impl IntoResponse {
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            HeaderValue::from_static("https://advertiser.example/"),
        )],
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let app = axum::Router::new().route("/click/{token}", axum::routing::get(redirect));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare302 listening on {addr}");
    axum::serve(listener, app).await
}
