//! What every adclick component agrees on: the click as it travels on Kafka, the signed
//! impression token a click arrives with, and the minute a click is counted in.
//!
//! | module | concept |
//! |---|---|
//! | [`wire`] | the `Click` record of `proto/adclick/v1/click.proto`, its flags and Kafka key |
//! | [`token`] | impression tokens: their byte layout, signing, and verification with key rotation |
//! | [`kafka`] | where the clicks topic is and the librdkafka properties every client takes |
//! | [`archive`] | the raw click archive's object names and bytes (exporter writes, rollup reads) |
//! | [`minute`] | event-time minutes: which minute a click belongs to and the timestamp its sample carries |
//! | [`day`] | the UTC day a block, a bill and a late click's `block_day` cover: the minutes that END in it |

pub mod archive;
pub mod day;
pub mod kafka;
pub mod minute;
pub mod token;
pub mod wire;

pub use day::Day;
pub use kafka::KafkaSettings;
pub use minute::{Minute, now_ms};
pub use token::{Claims, Signer, TokenError, Verified, Verifier};
pub use wire::{Click, ClickFlag};
