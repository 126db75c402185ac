//! Taking cert-manager's objects apart field by field: [`Obj`] hands out typed fields and
//! reports what no rule took; a field of the wrong type or a missing required one is
//! [`Invalid`] (exit code 2).

use serde_json::{Map, Value};

use super::CERT_MANAGER_API_VERSION;
use super::notes::Notes;

/// An input that is not a cert-manager object this command can read (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The path of the field, e.g. `spec.issuerRef.name`; empty for the whole document.
    pub field: String,
    pub message: String,
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A mapping of the input, taken apart field by field. What no rule takes is reported by
/// [`Obj::finish`], so no input field goes unmentioned.
#[derive(Debug)]
pub(crate) struct Obj {
    pub(super) path: String,
    pub(super) map: Map<String, Value>,
}

impl Obj {
    /// `value` must be a mapping; `path` is its field path (empty for the document).
    pub(crate) fn new(value: Value, path: &str) -> Result<Obj, Invalid> {
        match value {
            Value::Object(map) => Ok(Obj {
                path: path.to_string(),
                map,
            }),
            other => Err(invalid(
                path,
                format!("expected a mapping, found {}", type_name(&other)),
            )),
        }
    }

    /// The path of one of this mapping's fields.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Removes a field; an explicit `null` counts as absent.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn expected(&self, key: &str, what: &str, found: &Value) -> Invalid {
        invalid(
            self.path(key),
            format!("expected {what}, found {}", type_name(found)),
        )
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.expected(key, "a string", &other)),
        }
    }

    /// A string that must be present and not empty.
    pub(crate) fn required_string(&mut self, key: &str) -> Result<String, Invalid> {
        match self.string(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(invalid(self.path(key), "required, but missing or empty")),
        }
    }

    /// A string that must be one of `allowed` (cert-manager's enum values, case-sensitive).
    pub(crate) fn one_of(
        &mut self,
        key: &str,
        allowed: &[&str],
    ) -> Result<Option<String>, Invalid> {
        match self.string(key)? {
            Some(s) if !allowed.contains(&s.as_str()) => Err(invalid(
                self.path(key),
                format!("expected one of {}, found {s:?}", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.expected(key, "true or false", &other)),
        }
    }

    pub(crate) fn integer(&mut self, key: &str) -> Result<Option<i64>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(self.expected(key, "an integer", &other)),
        }
    }

    pub(crate) fn list(&mut self, key: &str) -> Result<Option<Vec<Value>>, Invalid> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.expected(key, "a list", &other)),
        }
    }

    pub(crate) fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, Invalid> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(invalid(
                    format!("{}[{i}]", self.path(key)),
                    format!("expected a string, found {}", type_name(&other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A mapping of strings to strings (labels, annotations).
    pub(crate) fn string_map(&mut self, key: &str) -> Result<Option<Map<String, Value>>, Invalid> {
        let Some(obj) = self.object(key)? else {
            return Ok(None);
        };
        for (k, v) in &obj.map {
            if !v.is_string() {
                return Err(invalid(
                    format!("{}[{k}]", obj.path),
                    format!("expected a string, found {}", type_name(v)),
                ));
            }
        }
        Ok(Some(obj.map))
    }

    pub(crate) fn object(&mut self, key: &str) -> Result<Option<Obj>, Invalid> {
        let path = self.path(key);
        self.take(key).map(|v| Obj::new(v, &path)).transpose()
    }

    /// Reports every field no rule took: left out, as a loss, since a field this command does
    /// not know may mean anything.
    pub(crate) fn finish(self, notes: &mut Notes) {
        for (key, value) in &self.map {
            if value.is_null() {
                continue;
            }
            let field = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            notes.lost(
                &field,
                Some(value),
                format!("not a {CERT_MANAGER_API_VERSION} field ferrocert convert knows"),
            );
        }
    }
}

pub(crate) fn put(out: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    out.insert(key.to_string(), value.into());
}

/// A cert-manager `SecretKeySelector` (`name`, optional `key`): the same shape in ferrocert.
pub(crate) fn secret_ref(mut obj: Obj, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    put(&mut out, "name", obj.required_string("name")?);
    if let Some(key) = obj.string("key")?.filter(|k| !k.is_empty()) {
        put(&mut out, "key", key);
    }
    obj.finish(notes);
    Ok(Value::Object(out))
}
