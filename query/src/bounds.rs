//! The checks made on a query's raw text before it is parsed: its length, and its nesting, so that
//! promql-parser never builds a tree deep enough to exhaust the stack.
//!
//! Why before parsing: promql-parser's LR parser keeps its own stack on the heap, but its actions
//! type-check each new node by recursing into the subtree below it (`Expr::value_type` through
//! unary, binary and paren nodes), and printing and dropping the tree recurse too. A 16 KiB query
//! holds 8,000 nested parentheses or 16,000 unary minus signs (`----x`); neither has any bracket
//! nesting to speak of in the second case, so operators are counted as well.
//!
//! The bound: along any path from the root of the tree, an aggregation, call or paren node has
//! its own `(` enclosing everything below it (at most the deepest bracket nesting B of them), a
//! binary or unary node has its own operator token (at most the O operator tokens of the text),
//! and a subquery is never directly below another subquery (the parser refuses it at once), so
//! the path is at most 2 × (B + O) + 2 long. `nesting` returns B + O.

use crate::policy::Limits;
use crate::refusal::Refusal;

/// Refuses a query longer than `limits.max_bytes` (checked first, in constant time) or nesting
/// deeper than `limits.max_nesting`.
pub(crate) fn check(query: &str, limits: Limits) -> Result<(), Refusal> {
    if query.len() > limits.max_bytes {
        return Err(Refusal::TooLong {
            len: query.len(),
            max: limits.max_bytes,
        });
    }
    let nesting = nesting(query);
    if nesting > limits.max_nesting {
        return Err(Refusal::TooDeep {
            nesting,
            max: limits.max_nesting,
        });
    }
    Ok(())
}

/// The deepest bracket nesting plus the number of operator tokens, outside strings and comments.
///
/// It follows promql-parser's lexer (`src/parser/lex.rs`) where it matters: strings open with
/// `"`, `'` or `` ` `` and a backslash escapes the next character in all three; `#` starts a
/// comment up to `\r` or `\n`; a `{` opens a matcher list in which nothing is an operator (its
/// `!=`, `=~`, `or` are matcher syntax). Wherever this scan and the lexer could disagree, the text
/// is not lexable (an unterminated string, a quote inside brackets, a `{` inside braces), and the
/// lexer, which reads the whole text before the parser starts, refuses it before any tree is
/// built. Everything uncertain is over-counted: the `-` of `1e-5` or `offset -5m`, a `+` that
/// the parser drops, `<=` counted once.
pub(crate) fn nesting(query: &str) -> usize {
    let b = query.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut operators = 0usize;
    let mut in_braces = false;
    while i < b.len() {
        match b[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        c if c == quote => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            open @ (b'(' | b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
                in_braces |= open == b'{';
                i += 1;
            }
            close @ (b')' | b']' | b'}') => {
                depth = depth.saturating_sub(1);
                in_braces &= close != b'}';
                i += 1;
            }
            _ if in_braces => i += 1,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' => {
                operators += 1;
                i += 1;
            }
            // `==` and `!=` (a lone `=` or `!` is no operator outside braces: the lexer refuses
            // `!` alone and the grammar has no `=` between expressions).
            b'=' | b'!' if b.get(i + 1) == Some(&b'=') => {
                operators += 1;
                i += 2;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' => {
                // A whole word: the lexer's identifiers and keywords are maximal runs of these
                // (a number or duration cannot be followed by a letter), so `or` inside
                // `vector` is not counted and `OR` is.
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operators += 1;
                }
            }
            _ => i += 1,
        }
    }
    deepest + operators
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_operators_count() {
        assert_eq!(nesting("1"), 0);
        assert_eq!(nesting("1 + 1"), 1);
        assert_eq!(nesting("sum(rate(x[5m]))"), 3);
        assert_eq!(nesting("a and b or c unless d atan2 e"), 4);
        assert_eq!(nesting("a AND b"), 1);
        assert_eq!(nesting("----x"), 4);
        assert_eq!(nesting("a == b != c <= d"), 3);
        // Matcher syntax is no operator; strings and comments hold nothing.
        assert_eq!(
            nesting(r#"x{a!="1", b=~"((((", c!~"-", d="1" or e="2"}"#),
            1
        );
        assert_eq!(nesting("x # ((((((( - - -\n+ y"), 1);
        assert_eq!(nesting(r#"label_replace(x, "a", "((", "b", "\"((")"#), 1);
        assert_eq!(nesting("vector(1) or floor(x)"), 2);
    }

    #[test]
    fn closing_brackets_in_strings_do_not_hide_depth() {
        let q = format!(
            r#"x{{a="{}"}} + {}1{}"#,
            ")".repeat(50),
            "(".repeat(50),
            ")".repeat(50)
        );
        assert_eq!(nesting(&q), 50 + 1);
    }

    #[test]
    fn an_unterminated_string_or_escape_ends_the_scan() {
        assert_eq!(nesting(r#"(("\"#), 2);
        assert_eq!(nesting(r#"(("abc"#), 2);
    }

    #[test]
    fn limits_refuse_length_first() {
        let limits = Limits {
            max_bytes: 10,
            max_nesting: 2,
        };
        assert_eq!(
            check(&"(".repeat(11), limits),
            Err(Refusal::TooLong { len: 11, max: 10 })
        );
        assert_eq!(
            check("(((1)))", limits),
            Err(Refusal::TooDeep { nesting: 3, max: 2 })
        );
        assert_eq!(check("((1))", limits), Ok(()));
    }
}
