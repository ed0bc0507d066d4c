//! The Prometheus tools as tests use them: where `promtool` is (`$PROMTOOL`, else the stack's),
//! running it, and reading what `promtool tsdb dump` prints — how tests prove that blocks adclick
//! writes are blocks Prometheus reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of a Prometheus tool; panics with instructions when it is missing, because a test
/// that silently skipped would claim a compatibility it never checked.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: these tests check blocks with the real Prometheus 2.42 tools. \
         Install them with `apt-get install -y prometheus` (deploy/local/install does).",
        path.display()
    );
    path
}

/// `promtool`: `$PROMTOOL` when set, else the stack's ([`tool`]); panics when it is missing.
pub fn promtool() -> PathBuf {
    match std::env::var_os("PROMTOOL") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "$PROMTOOL names {}, which is not a file",
                path.display()
            );
            path
        }
        None => tool("promtool"),
    }
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One sample as the tests compare them: sorted labels, timestamp, value bits (every NaN
/// compares as one, since `promtool` prints all of them as `NaN`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    pub labels: Vec<(String, String)>,
    pub timestamp_ms: i64,
    pub value_bits: u64,
}

const NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

pub fn value_bits(value: f64) -> u64 {
    if value.is_nan() {
        NAN_BITS
    } else {
        value.to_bits()
    }
}

/// A data directory for promtool holding the given blocks, plus the empty `wal` directory that
/// promtool 2.42's `tsdb dump` needs to open a database.
pub fn db_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("wal")).unwrap();
    dir
}

/// Every sample `promtool tsdb dump` prints for the database, sorted.
pub fn dump(db: &Path) -> Vec<Point> {
    let output = run(Command::new(promtool()).args(["tsdb", "dump"]).arg(db));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut out: Vec<Point> = text.lines().map(parse_dump_line).collect();
    out.sort();
    out
}

/// Parses `{name="value", …} <value as Go %g> <timestamp ms>`, values quoted by Go's
/// `strconv.Quote` (labels.String in Prometheus 2.42).
pub fn parse_dump_line(line: &str) -> Point {
    let mut chars = line.char_indices().peekable();
    assert_eq!(chars.next().map(|(_, c)| c), Some('{'), "{line}");
    let mut labels = Vec::new();
    let rest_at = loop {
        let mut name = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            let (_, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unterminated value: {line}"));
            match c {
                '"' => break,
                '\\' => value.push(unescape(&mut chars, line)),
                c => value.push(c),
            }
        }
        labels.push((name, value));
        match chars.next() {
            Some((_, ',')) => assert_eq!(chars.next().map(|(_, c)| c), Some(' '), "{line}"),
            Some((i, '}')) => break i + 1,
            other => panic!("unexpected {other:?} in {line}"),
        }
    };
    let mut fields = line[rest_at..].split_whitespace();
    let value = match fields.next().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|e| panic!("value {v:?}: {e}")),
    };
    let timestamp_ms = fields.next().unwrap().parse().unwrap();
    assert!(fields.next().is_none(), "{line}");
    labels.sort();
    Point {
        labels,
        timestamp_ms,
        value_bits: value_bits(value),
    }
}

/// One escape of Go's `strconv.Quote`, after its backslash.
fn unescape(chars: &mut impl Iterator<Item = (usize, char)>, line: &str) -> char {
    fn hex(chars: &mut impl Iterator<Item = (usize, char)>, digits: usize) -> char {
        let text: String = (0..digits).map(|_| chars.next().unwrap().1).collect();
        char::from_u32(u32::from_str_radix(&text, 16).unwrap()).unwrap()
    }
    match chars.next().map(|(_, c)| c) {
        Some('a') => '\u{7}',
        Some('b') => '\u{8}',
        Some('f') => '\u{c}',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('t') => '\t',
        Some('v') => '\u{b}',
        Some('\\') => '\\',
        Some('"') => '"',
        Some('x') => hex(chars, 2),
        Some('u') => hex(chars, 4),
        Some('U') => hex(chars, 8),
        other => panic!("unknown escape {other:?} in {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lines_parse_with_go_escapes() {
        let point = parse_dump_line(r#"{__name__="m", a="q\"b\\s\n\t\x01\u00a0é🎉"} 1e+06 60000"#);
        assert_eq!(
            point.labels,
            vec![
                ("__name__".to_string(), "m".to_string()),
                ("a".to_string(), "q\"b\\s\n\t\u{1}\u{a0}é🎉".to_string())
            ]
        );
        assert_eq!(point.value_bits, 1e6f64.to_bits());
        assert_eq!(point.timestamp_ms, 60_000);
        assert_eq!(parse_dump_line(r#"{a="}, x"} NaN -5"#).value_bits, NAN_BITS);
        assert_eq!(
            parse_dump_line(r#"{a="1"} -Inf 0"#).value_bits,
            f64::NEG_INFINITY.to_bits()
        );
    }
}
