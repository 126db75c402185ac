//! Just enough of the Prometheus text format to read counters from the controller's and the API
//! server's `/metrics`, and to subtract one scrape from another.

use std::collections::BTreeMap;

/// One sample line: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Parses every sample line of a scrape whose metric name is `name` (comments and other metrics
/// are skipped; a line that does not parse is skipped too: this is a measuring tool, not a
/// validator).
pub fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(parse_line)
        .filter(|s| s.name == name)
        .collect()
}

/// Sum of the samples of `name` whose labels satisfy `keep`.
pub fn sum(text: &str, name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples(text, name)
        .iter()
        .filter(|s| keep(s))
        .map(|s| s.value)
        .fold(0.0, |a, b| a + b)
}

/// Sums the samples of `name` grouped by the value of `label` (for example ACME requests by
/// endpoint).
pub fn by_label(
    text: &str,
    name: &str,
    label: &str,
    keep: impl Fn(&Sample) -> bool,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples(text, name).iter().filter(|s| keep(s)) {
        *out.entry(s.label(label).to_string()).or_insert(0.0) += s.value;
    }
    out
}

/// `after - before` per key, dropping keys that did not move.
pub fn diff(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| d.abs() > f64::EPSILON)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, value_part) = if let Some(body) = rest.strip_prefix('{') {
        let (labels, after) = parse_labels(body)?;
        (labels, after)
    } else {
        (BTreeMap::new(), rest)
    };
    let value = value_part.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y\"z"}` and returns the labels and what follows the closing brace.
fn parse_labels(body: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        other => other,
                    });
                }
                '"' => break i,
                other => value.push(other),
            }
        };
        labels.insert(key, value);
        rest = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP apiserver_request_total x
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",resource="secrets",verb="CREATE"} 12
apiserver_request_total{code="200",component="apiserver",resource="secrets",verb="GET"} 3
apiserver_request_total{code="200",component="apiserver",resource="leases",verb="PUT"} 7
apiserver_request_total_other 1
ferrocert_acme_requests_total{endpoint="newOrder",method="POST",status="201"} 5
ferrocert_acme_requests_total{endpoint="newNonce",method="HEAD",status="200"} 2.0
ferrocert_acme_orders_created_total 5
weird{msg="a \"quoted\", value"} 1
"#;

    #[test]
    fn sums_and_groups() {
        let by_verb = by_label(TEXT, "apiserver_request_total", "verb", |s| {
            s.label("resource") != "leases"
        });
        assert_eq!(by_verb.get("CREATE"), Some(&12.0));
        assert_eq!(by_verb.get("GET"), Some(&3.0));
        assert_eq!(by_verb.get("PUT"), None);
        assert_eq!(sum(TEXT, "ferrocert_acme_requests_total", |_| true), 7.0);
        assert_eq!(
            sum(TEXT, "ferrocert_acme_orders_created_total", |_| true),
            5.0
        );
    }

    #[test]
    fn escaped_label_values() {
        let s = samples(TEXT, "weird");
        assert_eq!(s[0].label("msg"), r#"a "quoted", value"#);
    }

    #[test]
    fn differences_keep_what_moved() {
        let before = BTreeMap::from([("GET".to_string(), 3.0), ("LIST".to_string(), 1.0)]);
        let after = BTreeMap::from([
            ("GET".to_string(), 10.0),
            ("LIST".to_string(), 1.0),
            ("PATCH".to_string(), 4.0),
        ]);
        let d = diff(&before, &after);
        assert_eq!(
            d,
            BTreeMap::from([("GET".to_string(), 7.0), ("PATCH".to_string(), 4.0)])
        );
    }
}
