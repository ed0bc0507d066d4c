//! An error with its causes on one line, for logs: libraries keep each cause as `#[source]`
//! (so that callers can inspect it), which `Display` alone does not show.

use std::error::Error;
use std::fmt;

/// Displays `error: cause: cause …`, e.g. `tracing::warn!(error = %ErrorChain(&e), …)`.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("checkpoint of partition 3")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_in_order() {
        let e = Outer(std::io::Error::other("bucket gone"));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "checkpoint of partition 3: bucket gone"
        );
    }
}
