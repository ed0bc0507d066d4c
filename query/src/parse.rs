//! promql-parser behind a guard: its panics become a refusal instead of a dropped request.

use std::panic;

use promql_parser::parser::Expr;

use crate::refusal::Refusal;

/// Parses `text` (already bounded by `bounds::check`).
///
/// promql-parser 0.11.1 panics on some input it lexes fine: a range or offset given as a plain
/// number of seconds goes through `Duration::from_secs_f64`, which panics when the number is out
/// of range (`x[1e30]`, `x offset 1e30`; `src/parser/promql.y`, rule `duration`). `parse` takes
/// only the text and returns an owned tree, so no state is left half-changed by an unwind. This
/// relies on the default `panic = "unwind"` (the workspace's profiles keep it); the panic hook
/// still prints the panic's message to stderr.
pub(crate) fn parse(text: &str) -> Result<Expr, Refusal> {
    match panic::catch_unwind(|| promql_parser::parser::parse(text)) {
        Ok(Ok(expr)) => Ok(expr),
        Ok(Err(message)) => Err(Refusal::Parse(message)),
        Err(_) => Err(Refusal::Parse(
            "the parser gave up on it (is a duration out of range?)".into(),
        )),
    }
}
