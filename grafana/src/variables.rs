//! Template variables in a query's text (`$advertiser`, `${campaign}`, `[[ad]]`, `$__range`, …):
//! which ones a text uses, Grafana's global ones, and replacing them by values as Grafana does
//! before it sends a query.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Grafana's global variables that a query may use without defining them.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "__range",
    "__range_s",
    "__range_ms",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__rate_interval_ms",
    "__from",
    "__to",
    "__dashboard",
    "__org",
    "__user",
    "__timeFilter",
];

/// A duration as Grafana writes it into PromQL: whole seconds as `{n}s`, else `{n}ms`.
pub fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Grafana's global variables for a query over `[from_ms, to_ms]` at `interval`: `__range`
/// (`{seconds}s`), `__range_s`, `__range_ms`, `__interval`, `__interval_ms`, `__rate_interval`
/// (Grafana: max(interval + scrape interval, 4 × scrape interval); pass the result),
/// `__rate_interval_ms`, `__from`, `__to` (ms).
pub fn builtin_values(
    from_ms: i64,
    to_ms: i64,
    interval: Duration,
    rate_interval: Duration,
) -> BTreeMap<String, String> {
    let range_ms = (to_ms - from_ms).max(0);
    let mut v = BTreeMap::new();
    v.insert("__range".into(), format!("{}s", range_ms / 1000));
    v.insert("__range_s".into(), (range_ms / 1000).to_string());
    v.insert("__range_ms".into(), range_ms.to_string());
    v.insert("__interval".into(), prom_duration(interval));
    v.insert("__interval_ms".into(), interval.as_millis().to_string());
    v.insert("__rate_interval".into(), prom_duration(rate_interval));
    v.insert(
        "__rate_interval_ms".into(),
        rate_interval.as_millis().to_string(),
    );
    v.insert("__from".into(), from_ms.to_string());
    v.insert("__to".into(), to_ms.to_string());
    v
}

/// One variable reference found in a text: where it is and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    start: usize,
    end: usize,
    name: String,
}

/// Finds `$name`, `${name}`, `${name:format}` and `[[name]]`. A `$` that starts none of them
/// (a regex anchor in `=~"x$"`) is left alone.
fn references(text: &str) -> Vec<Reference> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = text.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1] == b'{' {
            if let Some(close) = text[i + 2..].find('}') {
                let inner = &text[i + 2..i + 2 + close];
                let name = inner.split(':').next().unwrap_or("");
                if !name.is_empty() && name.bytes().all(ident) {
                    out.push(Reference {
                        start: i,
                        end: i + 3 + close,
                        name: name.into(),
                    });
                    i += 3 + close;
                    continue;
                }
            }
        } else if b[i] == b'$' && i + 1 < b.len() && ident(b[i + 1]) {
            let mut j = i + 1;
            while j < b.len() && ident(b[j]) {
                j += 1;
            }
            out.push(Reference {
                start: i,
                end: j,
                name: text[i + 1..j].into(),
            });
            i = j;
            continue;
        } else if b[i] == b'[' && text[i..].starts_with("[[") {
            if let Some(close) = text[i + 2..].find("]]") {
                let name = &text[i + 2..i + 2 + close];
                if !name.is_empty() && name.bytes().all(ident) {
                    out.push(Reference {
                        start: i,
                        end: i + 4 + close,
                        name: name.into(),
                    });
                    i += 4 + close;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// The names of the variables `text` uses, each once, in order of first use.
pub fn referenced_variables(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    references(text)
        .into_iter()
        .filter(|r| seen.insert(r.name.clone()))
        .map(|r| r.name)
        .collect()
}

/// A text that [`substitute`] could not complete: the variables without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for {} in {text:?}", dollar_names(.missing))]
pub struct MissingValues {
    /// The names (without `$`), sorted, each once.
    pub missing: Vec<String>,
    /// The text as it was given.
    pub text: String,
}

fn dollar_names(names: &[String]) -> String {
    names
        .iter()
        .map(|m| format!("${m}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with every variable reference replaced by its value in `values` (user variables and
/// [`builtin_values`] alike). Values go in as they are: for a multi-value variable pass what
/// Grafana would (its `allValue`, e.g. `.*`, or `(a|b)`). Fails naming every variable that has
/// no value, so a query is never sent half substituted.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, MissingValues> {
    let refs = references(text);
    let missing: BTreeSet<&str> = refs
        .iter()
        .filter(|r| !values.contains_key(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(MissingValues {
            missing: missing.into_iter().map(String::from).collect(),
            text: text.to_string(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in refs {
        out.push_str(&text[at..r.start]);
        out.push_str(&values[&r.name]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitution_matches_whole_names_in_every_syntax() {
        let v = values(&[
            ("ad", "7"),
            ("advertiser", "3"),
            ("__range", "3600s"),
            ("__range_s", "3600"),
        ]);
        assert_eq!(
            substitute(
                r#"x{advertiser_id="$advertiser", ad_id=~"${ad}", b="[[ad]]", c="${ad:regex}"}[$__range] $__range_s"#,
                &v
            )
            .unwrap(),
            r#"x{advertiser_id="3", ad_id=~"7", b="7", c="7"}[3600s] 3600"#
        );
        // A regex anchor and a lone `$` are not variables.
        assert_eq!(
            substitute(r#"x{a=~"foo$", b="$"} $ 1"#, &v).unwrap(),
            r#"x{a=~"foo$", b="$"} $ 1"#
        );
        let err = substitute("x{a=\"$campaign\"}[$__interval]", &v)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("$campaign") && err.contains("$__interval"),
            "{err}"
        );
        assert_eq!(
            referenced_variables("$a ${b} [[a]] $__range"),
            vec!["a", "b", "__range"]
        );
    }

    #[test]
    fn builtins_are_what_grafana_sends() {
        let b = builtin_values(
            1_000_000,
            1_000_000 + 6 * 3_600_000,
            Duration::from_secs(60),
            Duration::from_millis(1500),
        );
        assert_eq!(b["__range"], "21600s");
        assert_eq!(b["__range_s"], "21600");
        assert_eq!(b["__range_ms"], "21600000");
        assert_eq!(b["__interval"], "60s");
        assert_eq!(b["__interval_ms"], "60000");
        assert_eq!(b["__rate_interval"], "1500ms");
        assert_eq!(b["__from"], "1000000");
    }
}
