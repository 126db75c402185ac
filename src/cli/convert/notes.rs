//! The report of a conversion: a [`Note`] per noteworthy field, collected per object by
//! [`Notes`].

use std::fmt;

use serde_json::Value;

/// What happened to a field (or to a whole object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// In the output as it was; the note says something worth knowing about it.
    Kept,
    /// In the output with another value.
    Changed,
    /// Not in the output.
    Dropped,
    /// Has no ferrocert equivalent: the field (a solver, an issuer type, an external issuer) is
    /// left out of the output, or the whole object is.
    NotConverted,
    /// Not a cert-manager object this command converts: written out unchanged.
    PassedThrough,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Kept => "kept",
            Action::Changed => "changed",
            Action::Dropped => "dropped",
            Action::NotConverted => "not converted",
            Action::PassedThrough => "passed through unchanged",
        }
    }
}

/// One line of the report: which object, which field, what happened and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Certificate shop/web`, `ClusterIssuer letsencrypt`.
    pub object: String,
    /// `spec.usages`; empty for a note about the whole object.
    pub field: String,
    /// The input value, when it is short enough to show.
    pub value: Option<String>,
    pub action: Action,
    pub reason: String,
    pub(super) loss: bool,
}

impl Note {
    /// Whether the output means less than the input did: the exit code is then 1.
    pub fn is_loss(&self) -> bool {
        self.loss
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.object)?;
        if !self.field.is_empty() {
            write!(f, "{} ", self.field)?;
        }
        if let Some(value) = &self.value {
            write!(f, "{value} ")?;
        }
        f.write_str(self.action.as_str())?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// The notes of one object, as the rules add them.
#[derive(Debug)]
pub(crate) struct Notes {
    object: String,
    list: Vec<Note>,
}

impl Notes {
    pub(crate) fn new(object: impl Into<String>) -> Self {
        Notes {
            object: object.into(),
            list: Vec::new(),
        }
    }

    fn add(
        &mut self,
        field: &str,
        value: Option<&Value>,
        action: Action,
        loss: bool,
        reason: impl Into<String>,
    ) {
        self.list.push(Note {
            object: self.object.clone(),
            field: field.to_string(),
            value: value.and_then(show),
            action,
            reason: reason.into(),
            loss,
        });
    }

    /// Kept as it was, with something worth knowing.
    pub(crate) fn kept(&mut self, field: &str, value: Option<&Value>, reason: impl Into<String>) {
        self.add(field, value, Action::Kept, false, reason);
    }

    /// Kept, but it will not work as it did (the reason says why and what to do).
    pub(crate) fn kept_lossy(
        &mut self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) {
        self.add(field, value, Action::Kept, true, reason);
    }

    /// Changed to an equivalent value (the reason says to what).
    pub(crate) fn changed(
        &mut self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) {
        self.add(field, value, Action::Changed, false, reason);
    }

    /// Changed to a value that means less (the reason says to what and what is lost).
    pub(crate) fn changed_lossy(
        &mut self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) {
        self.add(field, value, Action::Changed, true, reason);
    }

    /// Left out, harmlessly.
    pub(crate) fn dropped(
        &mut self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) {
        self.add(field, value, Action::Dropped, false, reason);
    }

    /// Left out, and the output means less for it.
    pub(crate) fn lost(&mut self, field: &str, value: Option<&Value>, reason: impl Into<String>) {
        self.add(field, value, Action::Dropped, true, reason);
    }

    /// No ferrocert equivalent (a loss).
    pub(crate) fn not_converted(
        &mut self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) {
        self.add(field, value, Action::NotConverted, true, reason);
    }

    pub(super) fn passed_through(&mut self, loss: bool, reason: impl Into<String>) {
        self.add("", None, Action::PassedThrough, loss, reason);
    }

    pub(super) fn into_vec(self) -> Vec<Note> {
        self.list
    }
}

/// A short rendering of an input value for a note: scalars and lists of scalars, at most 80
/// characters; `None` for mappings and long values.
pub(super) fn show(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null | Value::Object(_) => return None,
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) => None,
                    other => show(other),
                })
                .collect();
            format!("[{}]", parts?.join(", "))
        }
    };
    (text.chars().count() <= 80 && !text.contains('\n')).then_some(text)
}
