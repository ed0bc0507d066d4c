//! Generates the Rust types of the wire contract (`proto/adclick/v1/click.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps `cargo build` free of system packages.
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let proto = "../proto/adclick/v1/click.proto";
    println!("cargo:rerun-if-changed={proto}");
    prost_build::Config::new().compile_protos(&[proto], &["../proto"])?;
    Ok(())
}
