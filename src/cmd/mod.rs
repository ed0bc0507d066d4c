//! One module per subcommand: its flags and how it runs.

pub mod ingest;
pub mod loadgen;
pub mod token;
