//! A request's parameters as Prometheus reads them: the URL's query string, then, for a POST
//! with `Content-Type: application/x-www-form-urlencoded`, the body's (Go's `ParseForm`). Kept
//! as an ordered list of pairs, repeats included, so `match[]` stays a list and a repeated
//! `query` can be refused rather than one of its values silently chosen.

use std::time::Duration;

use axum::http::{HeaderMap, Method, header::CONTENT_TYPE};

/// The parameters of one request, in order: query string first, then the form body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

/// A parameter that makes the request unanswerable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Prometheus would take one of the values and ignore the others; which one differs between
    /// GET and POST, so the gateway answers neither.
    #[error("the parameter `{0}` is given more than once")]
    Repeated(&'static str),
    #[error("the parameter `{0}` is missing")]
    Missing(&'static str),
    #[error("the parameter `{name}` is not {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

impl Params {
    /// The parameters of a request with this method, URL query string and body.
    pub fn from_request(
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Params {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        if *method == Method::POST && is_form(headers) {
            pairs.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    /// The one value of `name`: an error when it is missing or repeated.
    pub fn single(&self, name: &'static str) -> Result<&str, ParamError> {
        let mut values = self.all(name);
        let first = values.next().ok_or(ParamError::Missing(name))?;
        if values.next().is_some() {
            return Err(ParamError::Repeated(name));
        }
        Ok(first)
    }

    /// The one value of `name` if it is given (an error when repeated).
    pub fn optional(&self, name: &'static str) -> Result<Option<&str>, ParamError> {
        match self.single(name) {
            Ok(v) => Ok(Some(v)),
            Err(ParamError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `name` as a time, Unix ms, as Prometheus reads it: Unix seconds (fractions allowed) or
    /// RFC 3339. None when absent.
    pub fn time_ms(&self, name: &'static str) -> Result<Option<i64>, ParamError> {
        let Some(text) = self.optional(name)? else {
            return Ok(None);
        };
        let invalid = ParamError::Invalid {
            name,
            expected: "a time (Unix seconds or RFC 3339)",
        };
        if let Ok(seconds) = text.parse::<f64>() {
            // Within ±292 million years the product fits an i64; beyond, it is no time anyone
            // has data for.
            return if seconds.is_finite() && seconds.abs() < 9.0e12 {
                Ok(Some((seconds * 1000.0).round() as i64))
            } else {
                Err(invalid)
            };
        }
        rfc3339_ms(text).map(Some).ok_or(invalid)
    }

    /// `name` as a duration, as Prometheus reads it: seconds (fractions allowed) or a PromQL
    /// duration (`1m`, `1h30m`). None when absent; zero or negative is invalid.
    pub fn duration(&self, name: &'static str) -> Result<Option<Duration>, ParamError> {
        let Some(text) = self.optional(name)? else {
            return Ok(None);
        };
        let invalid = ParamError::Invalid {
            name,
            expected: "a positive duration (seconds, or such as 1m)",
        };
        let d = match text.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s < 1.0e12 => Duration::from_secs_f64(s),
            Ok(_) => return Err(invalid),
            Err(_) => promql_parser::util::parse_duration(text).map_err(|_| invalid.clone())?,
        };
        if d.is_zero() {
            return Err(invalid);
        }
        Ok(Some(d))
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// These parameters with only those named in `names`, in order.
    pub fn only(&self, names: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// These parameters without any named `name`, then `name` with each of `values`.
    pub fn replace(&self, name: &str, values: impl IntoIterator<Item = String>) -> Params {
        let mut pairs: Vec<(String, String)> =
            self.0.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.extend(values.into_iter().map(|v| (name.to_string(), v)));
        Params(pairs)
    }

    /// `application/x-www-form-urlencoded` text of these parameters.
    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

/// An RFC 3339 time, Unix ms. humantime reads UTC (`Z`) only; a `±hh:mm` offset is taken off
/// here first.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let cut = text
        .len()
        .checked_sub(6)
        .filter(|&i| text.is_char_boundary(i));
    let (utc, offset_ms) = match cut.map(|i| text.split_at(i)) {
        Some((base, zone)) if matches!(zone.as_bytes(), [b'+' | b'-', _, _, b':', _, _]) => {
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            (format!("{base}Z"), sign * (hours * 60 + minutes) * 60_000)
        }
        _ => (text.to_string(), 0),
    };
    let t = humantime::parse_rfc3339(&utc).ok()?;
    let ms = i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(ms - offset_ms)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn query_string_and_form_body_together() {
        let p = Params::from_request(
            &Method::POST,
            Some("time=5&match%5B%5D=a"),
            &form_headers(),
            b"query=sum%28x%29+%2B+1&match[]=b",
        );
        assert_eq!(p.single("query"), Ok("sum(x) + 1"));
        assert_eq!(p.single("time"), Ok("5"));
        assert_eq!(p.all("match[]").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.single("step"), Err(ParamError::Missing("step")));
        // A body is a form only when it says so, and only on POST.
        let p = Params::from_request(&Method::POST, None, &HeaderMap::new(), b"query=x");
        assert!(p.0.is_empty());
        let p = Params::from_request(&Method::GET, None, &form_headers(), b"query=x");
        assert!(p.0.is_empty());
    }

    #[test]
    fn a_repeated_query_is_an_error_wherever_the_copies_are() {
        let p = Params::from_request(&Method::POST, Some("query=a"), &form_headers(), b"query=b");
        assert_eq!(p.single("query"), Err(ParamError::Repeated("query")));
        let p = Params::from_request(&Method::GET, Some("query=a&query=a"), &form_headers(), b"");
        assert_eq!(p.single("query"), Err(ParamError::Repeated("query")));
    }

    #[test]
    fn times_and_durations_as_prometheus_reads_them() {
        let p = Params(vec![
            ("a".into(), "1700000000.5".into()),
            ("b".into(), "2026-12-06T00:00:00Z".into()),
            ("c".into(), "2026-12-06T00:00:00.250+01:00".into()),
            ("d".into(), "yesterday".into()),
            ("e".into(), "1e300".into()),
            ("u".into(), "2026-12-06T00:00:0é+01:00".into()),
            ("s".into(), "60".into()),
            ("m".into(), "1h30m".into()),
            ("z".into(), "0".into()),
            ("n".into(), "-1".into()),
        ]);
        assert_eq!(p.time_ms("a"), Ok(Some(1_700_000_000_500)));
        assert_eq!(p.time_ms("b"), Ok(Some(1_796_515_200_000)));
        assert_eq!(
            p.time_ms("c"),
            Ok(Some(1_796_515_200_000 - 3_600_000 + 250))
        );
        assert!(p.time_ms("d").is_err() && p.time_ms("e").is_err() && p.time_ms("u").is_err());
        assert_eq!(p.time_ms("absent"), Ok(None));
        assert_eq!(p.duration("s"), Ok(Some(Duration::from_secs(60))));
        assert_eq!(p.duration("m"), Ok(Some(Duration::from_secs(5400))));
        assert!(p.duration("z").is_err() && p.duration("n").is_err() && p.duration("d").is_err());
    }

    #[test]
    fn replace_keeps_the_rest_and_encodes() {
        let p = Params(vec![
            ("query".into(), "x".into()),
            ("time".into(), "1 2".into()),
        ]);
        let r = p.replace("query", ["a{b=\"c\"}".to_string()]);
        assert_eq!(r.encode(), "time=1+2&query=a%7Bb%3D%22c%22%7D");
    }
}
