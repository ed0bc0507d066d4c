//! A small client of Prometheus' HTTP query API, for tests that read back what they wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// One series of a query result: its labels and its samples (ms timestamp, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

/// A query that failed, with Prometheus' own words.
#[derive(Debug)]
pub struct PromError(pub String);

impl std::fmt::Display for PromError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for PromError {}

/// Prometheus' `/api/v1` at a base URL.
#[derive(Debug, Clone)]
pub struct PromApi {
    base: String,
    http: reqwest::Client,
}

impl PromApi {
    pub fn new(base: &str) -> PromApi {
        PromApi {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// A client of the API at `base` that presents `key` as `Authorization: Bearer <key>` (the
    /// query gateway's credential).
    pub fn with_key(base: &str, key: &str) -> PromApi {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
        );
        PromApi {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// An instant query at `time_ms` (now when `None`).
    pub async fn query(
        &self,
        promql: &str,
        time_ms: Option<i64>,
    ) -> Result<Vec<Series>, PromError> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = time_ms {
            params.push(("time", seconds(t)));
        }
        self.get("query", &params).await
    }

    /// A range query over `[start_ms, end_ms]` at `step_ms`.
    pub async fn query_range(
        &self,
        promql: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<Series>, PromError> {
        let params = [
            ("query", promql.to_string()),
            ("start", seconds(start_ms)),
            ("end", seconds(end_ms)),
            ("step", seconds(step_ms)),
        ];
        self.get("query_range", &params).await
    }

    /// The sum of every sample of `selector` in the last hour (0 when there is none); panics when
    /// the query fails.
    pub async fn sum_last_hour(&self, selector: &str) -> f64 {
        let r = self
            .query(&format!("sum(sum_over_time({selector}[1h]))"), None)
            .await
            .unwrap_or_else(|e| panic!("querying {selector}: {e}"));
        r.first()
            .and_then(|s| s.samples.last())
            .map_or(0.0, |s| s.1)
    }

    /// Values of a label, optionally restricted by series selectors.
    pub async fn label_values(
        &self,
        label: &str,
        matchers: &[&str],
    ) -> Result<Vec<String>, PromError> {
        let params: Vec<(&str, String)> = matchers
            .iter()
            .map(|m| ("match[]", m.to_string()))
            .collect();
        let body = self
            .get_json(&format!("label/{label}/values"), &params)
            .await?;
        Ok(body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn get(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Series>, PromError> {
        let body = self.get_json(endpoint, params).await?;
        parse_result(&body["data"])
    }

    async fn get_json(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Value, PromError> {
        let url = format!("{}/api/v1/{endpoint}", self.base);
        let resp = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| PromError(format!("GET {url}: {e}")))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| PromError(format!("GET {url}: {status}, body is not JSON: {e}")))?;
        if body["status"] != "success" {
            return Err(PromError(format!("GET {url} {params:?}: {status} {body}")));
        }
        Ok(body)
    }
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn parse_result(data: &Value) -> Result<Vec<Series>, PromError> {
    let bad = || PromError(format!("unexpected result shape: {data}"));
    let result = data["result"].as_array().ok_or_else(bad)?;
    let sample = |v: &Value| -> Option<(i64, f64)> {
        let t = v.get(0)?.as_f64()?;
        let x = v.get(1)?.as_str()?;
        let x = match x {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().ok()?,
        };
        Some(((t * 1000.0).round() as i64, x))
    };
    result
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let samples = if let Some(vs) = s["values"].as_array() {
                vs.iter()
                    .map(|v| sample(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?
            } else {
                vec![sample(&s["value"]).ok_or_else(bad)?]
            };
            Ok(Series { labels, samples })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_and_matrices() {
        let v: Value = serde_json::from_str(
            r#"{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1700000000.5,"3"]}]}"#,
        )
        .unwrap();
        let s = parse_result(&v).unwrap();
        assert_eq!(s[0].labels["a"], "1");
        assert_eq!(s[0].samples, vec![(1_700_000_000_500, 3.0)]);
        let m: Value = serde_json::from_str(
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[60,"1"],[120,"NaN"]]}]}"#,
        )
        .unwrap();
        let s = parse_result(&m).unwrap();
        assert_eq!(s[0].samples[0], (60_000, 1.0));
        assert!(s[0].samples[1].1.is_nan());
        assert_eq!(seconds(1_500), "1.500");
    }
}
