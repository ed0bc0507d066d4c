//! A request's parameters as Prometheus reads them: the URL's query string, then, for a POST
//! with `Content-Type: application/x-www-form-urlencoded`, the body's (Go's `ParseForm`). Kept
//! as an ordered list of pairs, repeats included, so `match[]` stays a list and a repeated
//! `query` can be refused rather than one of its values silently chosen.

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

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
    fn replace_keeps_the_rest_and_encodes() {
        let p = Params(vec![
            ("query".into(), "x".into()),
            ("time".into(), "1 2".into()),
        ]);
        let r = p.replace("query", ["a{b=\"c\"}".to_string()]);
        assert_eq!(r.encode(), "time=1+2&query=a%7Bb%3D%22c%22%7D");
    }
}
