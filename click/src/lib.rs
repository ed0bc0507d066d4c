//! What every adclick component agrees on: the click as it travels on Kafka,
//! and the minute a click is counted in.
//!
//! | module | concept |
//! |---|---|
//! | [`wire`] | the `Click` record of `proto/adclick/v1/click.proto`, its flags and Kafka key |
//! | [`minute`] | event-time minutes: which minute a click belongs to and the timestamp its sample carries |

pub mod minute;
pub mod wire;

pub use minute::Minute;
pub use wire::{Click, ClickFlag};
