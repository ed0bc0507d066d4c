//! Generates the Rust types of Prometheus' remote_write 1.0 messages
//! (`proto/prometheus/{types,remote}.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A vendored protoc keeps `cargo build` free of system packages.
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let protos = [
        "../proto/prometheus/types.proto",
        "../proto/prometheus/remote.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    prost_build::Config::new().compile_protos(&protos, &["../proto"])?;
    Ok(())
}
