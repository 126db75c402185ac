//! `ferrocert convert`: cert-manager manifests (`cert-manager.io/v1` Issuer, ClusterIssuer and
//! Certificate) to ferrocert's (`ferrocert.dev/v1alpha1`), with a note per field that was dropped
//! or changed, and why.
//!
//! The conversion is pure: [`convert_str`] turns the text of one input (multi-document YAML)
//! into converted documents with their [`Note`]s, [`convert_document`] does one object (a
//! `serde_json::Value` in, a `Value` out), and [`render`] writes the output YAML. [`run`] only
//! reads the inputs, prints, and picks the exit code:
//!
//! - 0: everything converted without loss (notes on harmless changes may still be printed);
//! - 1: some field could not be converted ([`Note::is_loss`]); the best-effort conversion is
//!   still written, and an object that cannot be converted at all becomes a comment;
//! - 2: an input could not be read: not YAML, not a Kubernetes object, or a cert-manager object
//!   without a required field or with a field of the wrong type (the message names the source,
//!   the document and the field). Nothing is written then.
//!
//! The rules for each field, and whether dropping it is a loss or harmless, are documented next
//! to the rule: metadata here, the Certificate spec in `convert/certificate.rs`, the Issuer spec
//! in `convert/issuer.rs` (`convert/fields.rs` takes the input apart, `convert/notes.rs` is the
//! report). Every converted object is checked by deserializing it into ferrocert's own types
//! ([`Certificate`], [`Issuer`], [`ClusterIssuer`]); a failure there is a bug of this module and
//! is reported as a loss.

mod certificate;
mod fields;
mod issuer;
mod notes;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value};

pub use fields::Invalid;
pub use notes::{Action, Note};

use crate::api::{Certificate, ClusterIssuer, Issuer};
use fields::{Obj, invalid, put, type_name};
use notes::Notes;

/// The cert-manager version this command converts.
pub const CERT_MANAGER_API_VERSION: &str = "cert-manager.io/v1";
/// What converted objects get.
pub const FERROCERT_API_VERSION: &str = "ferrocert.dev/v1alpha1";
/// The annotation `kubectl apply` keeps its last input in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The kinds converted.
const KINDS: [&str; 3] = ["Certificate", "Issuer", "ClusterIssuer"];

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConvertArgs {
    /// cert-manager YAML files (multi-document); `-` or no file reads stdin.
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Write the converted YAML to this file instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Documents

/// What a document became.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A ferrocert object (or a `v1 List` of them).
    Converted(Value),
    /// Written out as it came.
    PassedThrough(Value),
    /// Nothing to write but a comment naming the object.
    NotConverted,
}

/// One input document, converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// `Certificate shop/web`, or `document 3` for one without kind or name.
    pub object: String,
    pub output: Output,
    pub notes: Vec<Note>,
}

impl Converted {
    pub fn has_loss(&self) -> bool {
        self.notes.iter().any(Note::is_loss)
    }
}

/// How an object is named in notes: `Kind namespace/name`, `Kind name` without a namespace.
fn object_label(kind: &str, map: &Map<String, Value>) -> String {
    let meta = map.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|_| kind != "ClusterIssuer");
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Converts one document. `Err` means the document is not one this command can read (exit 2).
pub fn convert_document(doc: Value) -> Result<Converted, Invalid> {
    let Value::Object(map) = doc else {
        return Err(invalid(
            "",
            format!(
                "not a Kubernetes object: expected a mapping with apiVersion and kind, found {}",
                type_name(&doc)
            ),
        ));
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(invalid(
                "apiVersion",
                "missing or not a string: not a Kubernetes object",
            ));
        }
    };
    let kind = match map.get("kind") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(invalid(
                "kind",
                "missing or not a string: not a Kubernetes object",
            ));
        }
    };
    let object = object_label(&kind, &map);
    let mut notes = Notes::new(object.clone());
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let output = if api_version == CERT_MANAGER_API_VERSION && KINDS.contains(&kind.as_str()) {
        let output = convert_object(&kind, map, &mut notes)?;
        if let Output::Converted(value) = &output
            && let Err(err) = validate(&kind, value)
        {
            notes.not_converted(
                "",
                None,
                format!(
                    "internal error: the output does not deserialize as ferrocert's {kind} \
                     ({err}); this is a bug in ferrocert convert, please report it"
                ),
            );
        }
        output
    } else if api_version == "v1" && kind == "List" {
        return convert_list(map);
    } else {
        let (loss, reason) = pass_through_reason(&api_version, group, &kind);
        notes.passed_through(loss, reason);
        Output::PassedThrough(Value::Object(map))
    };
    Ok(Converted {
        object,
        output,
        notes: notes.into_vec(),
    })
}

/// Why a document is passed through, and whether that is a loss: a cert-manager Certificate
/// or issuer of another version is (the user wanted it converted); anything else is not.
fn pass_through_reason(api_version: &str, group: &str, kind: &str) -> (bool, String) {
    let cert_manager_group = matches!(group, "cert-manager.io" | "certmanager.k8s.io");
    if cert_manager_group && KINDS.contains(&kind) {
        (
            true,
            format!(
                "only {CERT_MANAGER_API_VERSION} is converted, this is {api_version}; convert it \
                 to {CERT_MANAGER_API_VERSION} first (cmctl convert), then again with ferrocert"
            ),
        )
    } else if cert_manager_group || group == "acme.cert-manager.io" {
        (
            false,
            format!(
                "{kind} is one of cert-manager's working objects; ferrocert has no equivalent \
                 and needs none: leave it out"
            ),
        )
    } else if group == crate::api::GROUP {
        (false, "already a ferrocert object".to_string())
    } else {
        (
            false,
            format!("not a {CERT_MANAGER_API_VERSION} Issuer, ClusterIssuer or Certificate"),
        )
    }
}

/// A `v1 List` (what `kubectl get -o yaml` prints): each item is converted; items that cannot
/// be converted are left out of the list (their notes say so).
fn convert_list(mut map: Map<String, Value>) -> Result<Converted, Invalid> {
    let items = match map.remove("items") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid(
                "items",
                format!("expected a list, found {}", type_name(&other)),
            ));
        }
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let converted = convert_document(item).map_err(|e| Invalid {
            field: if e.field.is_empty() {
                format!("items[{i}]")
            } else {
                format!("items[{i}].{}", e.field)
            },
            message: e.message,
        })?;
        notes.extend(converted.notes);
        match converted.output {
            Output::Converted(v) | Output::PassedThrough(v) => out.push(v),
            Output::NotConverted => {}
        }
    }
    Ok(Converted {
        object: "List".to_string(),
        output: Output::Converted(serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": out,
        })),
        notes,
    })
}

/// A cert-manager object of one of [`KINDS`]: metadata here, the spec in the submodules.
fn convert_object(
    kind: &str,
    map: Map<String, Value>,
    notes: &mut Notes,
) -> Result<Output, Invalid> {
    let mut obj = Obj {
        path: String::new(),
        map,
    };
    obj.take("apiVersion");
    obj.take("kind");
    let cluster_scoped = kind == "ClusterIssuer";
    let metadata = match obj.object("metadata")? {
        Some(meta) => convert_metadata(meta, kind, notes)?,
        None => return Err(invalid("metadata", "missing")),
    };
    // status: dropped, harmless: the controller writes its own.
    if let Some(status) = obj.take("status") {
        notes.dropped(
            "status",
            Some(&status),
            "the controller writes its own status",
        );
    }
    let spec = obj
        .object("spec")?
        .ok_or_else(|| invalid("spec", "missing"))?;
    let spec = if kind == "Certificate" {
        Some(certificate::convert_spec(spec, notes)?)
    } else {
        issuer::convert_spec(spec, cluster_scoped, notes)?
    };
    obj.finish(notes);
    Ok(match spec {
        Some(spec) => {
            let mut out = Map::new();
            put(&mut out, "apiVersion", FERROCERT_API_VERSION);
            put(&mut out, "kind", kind);
            put(&mut out, "metadata", metadata);
            put(&mut out, "spec", spec);
            Output::Converted(Value::Object(out))
        }
        None => Output::NotConverted,
    })
}

/// Metadata: `name`, `namespace`, `labels` and `annotations` are kept; the rest is the API
/// server's or cert-manager's and is dropped.
///
/// - `namespace` of a ClusterIssuer: dropped, harmless (cluster-scoped).
/// - the `kubectl.kubernetes.io/last-applied-configuration` annotation: dropped, harmless
///   (kubectl's copy of the cert-manager object; the next `kubectl apply` writes its own).
/// - other `cert-manager.io/` annotations: kept, harmless, with a note that ferrocert does not
///   read them on its own objects (it reads cert-manager's annotations on Ingresses and
///   Gateways only).
/// - `uid`, `resourceVersion`, `creationTimestamp`, `generation`, `managedFields`, `selfLink`,
///   `deletionTimestamp`, `deletionGracePeriodSeconds`: dropped, harmless (the API server's).
/// - `ownerReferences`: dropped, harmless (the owners' uids are those of the old objects); an
///   Ingress or Gateway owner means cert-manager's shim made the Certificate, and ferrocert's
///   shim makes its own from the same annotations, which the note says.
/// - `finalizers`: dropped, harmless (cert-manager's; ferrocert adds its own when it needs them).
/// - anything else (`generateName`, ...): dropped, as a loss.
fn convert_metadata(mut meta: Obj, kind: &str, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    put(&mut out, "name", meta.required_string("name")?);
    if let Some(namespace) = meta.string("namespace")? {
        if kind == "ClusterIssuer" {
            notes.dropped(
                "metadata.namespace",
                Some(&Value::String(namespace)),
                "a ClusterIssuer is cluster-scoped",
            );
        } else if !namespace.is_empty() {
            put(&mut out, "namespace", namespace);
        }
    }
    if let Some(labels) = meta.string_map("labels")?
        && !labels.is_empty()
    {
        put(&mut out, "labels", labels);
    }
    if let Some(mut annotations) = meta.string_map("annotations")? {
        if annotations.remove(LAST_APPLIED).is_some() {
            notes.dropped(
                &format!("metadata.annotations[{LAST_APPLIED}]"),
                None,
                "kubectl's copy of the cert-manager object; the next kubectl apply writes its own",
            );
        }
        for (key, value) in &annotations {
            if key.starts_with("cert-manager.io/") || key.contains(".cert-manager.io/") {
                notes.kept(
                    &format!("metadata.annotations[{key}]"),
                    Some(value),
                    format!("ferrocert does not read cert-manager's annotations on a {kind}"),
                );
            }
        }
        if !annotations.is_empty() {
            put(&mut out, "annotations", annotations);
        }
    }
    let server_fields = [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    let dropped: Vec<String> = server_fields
        .iter()
        .filter(|key| meta.take(key).is_some())
        .map(|key| format!("metadata.{key}"))
        .collect();
    if !dropped.is_empty() {
        notes.dropped(&dropped.join(", "), None, "set by the API server");
    }
    if let Some(owners) = meta.take("ownerReferences") {
        let shim_owner = owners.as_array().into_iter().flatten().find_map(|o| {
            let kind = o.get("kind").and_then(Value::as_str)?;
            let name = o.get("name").and_then(Value::as_str)?;
            matches!(kind, "Ingress" | "Gateway").then(|| format!("{kind} {name}"))
        });
        let reason = match shim_owner {
            Some(owner) => format!(
                "cert-manager's shim made this Certificate for {owner}; ferrocert's shim makes \
                 its own from the same annotations, so it may not need applying"
            ),
            None => "the owners' uids are those of the old objects".to_string(),
        };
        notes.dropped("metadata.ownerReferences", None, reason);
    }
    if let Some(finalizers) = meta.take("finalizers") {
        notes.dropped(
            "metadata.finalizers",
            Some(&finalizers),
            "cert-manager's; ferrocert adds its own when it needs them",
        );
    }
    meta.finish(notes);
    Ok(Value::Object(out))
}

/// Deserializes a converted object into ferrocert's type of its kind.
fn validate(kind: &str, value: &Value) -> Result<(), serde_json::Error> {
    match kind {
        "Certificate" => serde_json::from_value::<Certificate>(value.clone()).map(drop),
        "Issuer" => serde_json::from_value::<Issuer>(value.clone()).map(drop),
        _ => serde_json::from_value::<ClusterIssuer>(value.clone()).map(drop),
    }
}

// ---------------------------------------------------------------------------------------------
// Streams

/// An input that cannot be read (exit code 2): which source, which document, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {location}{message}")]
pub struct InputError {
    /// The file name, or `<stdin>`.
    pub source_name: String,
    /// `document 2 (Certificate shop/web): ` or empty.
    pub location: String,
    pub message: String,
}

/// Converts every document of one input (multi-document YAML), in order. Empty documents are
/// skipped. Errors are collected for every unreadable document; a YAML syntax error ends the
/// input there (the parser cannot resynchronize).
pub fn convert_str(text: &str, source_name: &str) -> Result<Vec<Converted>, Vec<InputError>> {
    let mut converted = Vec::new();
    let mut errors = Vec::new();
    let error = |location: String, message: String| InputError {
        source_name: source_name.to_string(),
        location,
        message,
    };
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let doc = match parse_document(document) {
            Ok(Some(doc)) => doc,
            Ok(None) => continue,
            Err(message) => {
                errors.push(error(format!("document {index}: "), message));
                break;
            }
        };
        let label = doc
            .as_object()
            .and_then(|map| Some(object_label(map.get("kind")?.as_str()?, map)));
        match convert_document(doc) {
            Ok(c) => converted.push(c),
            Err(e) => {
                let location = match label {
                    Some(label) => format!("document {index} ({label}): "),
                    None => format!("document {index}: "),
                };
                let message = if e.field.is_empty() {
                    e.message
                } else {
                    e.to_string()
                };
                errors.push(error(location, message));
            }
        }
    }
    if errors.is_empty() {
        Ok(converted)
    } else {
        Err(errors)
    }
}

/// One YAML document as JSON: `None` for an empty document; merge keys (`<<`) applied.
fn parse_document(document: serde_yaml::Deserializer<'_>) -> Result<Option<Value>, String> {
    use serde::Deserialize as _;
    let mut yaml = match serde_yaml::Value::deserialize(document) {
        Ok(yaml) => yaml,
        // A document with no content at all (e.g. after a trailing `---`).
        Err(e) if e.to_string().contains("EOF while parsing") => return Ok(None),
        Err(e) => return Err(format!("not YAML: {e}")),
    };
    if yaml.is_null() {
        return Ok(None);
    }
    yaml.apply_merge().map_err(|e| format!("not YAML: {e}"))?;
    serde_json::to_value(&yaml)
        .map(Some)
        .map_err(|e| format!("not a Kubernetes object: {e}"))
}

/// The output YAML: one document per input document, `---` between them; an object that was
/// not converted is a comment with its loss notes.
pub fn render(docs: &[Converted]) -> Result<String, serde_yaml::Error> {
    let mut parts = Vec::with_capacity(docs.len());
    for doc in docs {
        let text = match &doc.output {
            Output::Converted(v) | Output::PassedThrough(v) => serde_yaml::to_string(v)?,
            Output::NotConverted => {
                let mut text = format!("# {}: not converted\n", doc.object);
                for note in doc.notes.iter().filter(|n| n.is_loss()) {
                    text.push_str(&format!("# {note}\n"));
                }
                text
            }
        };
        parts.push(text);
    }
    Ok(parts.join("---\n"))
}

/// Counts for the summary line.
fn summary(docs: &[Converted]) -> String {
    let count = |f: fn(&Output) -> bool| docs.iter().filter(|d| f(&d.output)).count();
    let converted = count(|o| matches!(o, Output::Converted(_)));
    let passed = count(|o| matches!(o, Output::PassedThrough(_)));
    let not_converted = count(|o| matches!(o, Output::NotConverted));
    let losses = docs
        .iter()
        .flat_map(|d| &d.notes)
        .filter(|n| n.is_loss())
        .count();
    format!(
        "ferrocert convert: {converted} converted, {passed} passed through, {not_converted} not \
         converted; {losses} loss{}",
        if losses == 1 { "" } else { "es" }
    )
}

// ---------------------------------------------------------------------------------------------
// The command

/// Reads one source: a file, or stdin for `-`.
fn read_source(path: &PathBuf) -> Result<(String, String), InputError> {
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let mut bytes = Vec::new();
    let read = if stdin {
        std::io::stdin().lock().read_to_end(&mut bytes).map(drop)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(drop))
    };
    let fail = |message: String| InputError {
        source_name: name.clone(),
        location: String::new(),
        message,
    };
    read.map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
    Ok((name, text))
}

/// `ferrocert convert`: exit code 0 (no loss), 1 (some loss) or 2 (unreadable input, or the
/// output could not be written).
pub fn run(args: &ConvertArgs) -> ExitCode {
    let sources = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for path in &sources {
        match read_source(path) {
            Ok((name, text)) => match convert_str(&text, &name) {
                Ok(mut converted) => docs.append(&mut converted),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!("ferrocert convert: nothing written");
        return ExitCode::from(2);
    }
    for note in docs.iter().flat_map(|d| &d.notes) {
        let tag = if note.is_loss() { "loss" } else { "note" };
        eprintln!("{tag}: {note}");
    }
    let written = render(&docs)
        .map_err(|e| e.to_string())
        .and_then(|yaml| write_output(args.output.as_ref(), &yaml));
    if let Err(e) = written {
        eprintln!("error: writing the output: {e}");
        return ExitCode::from(2);
    }
    eprintln!("{}", summary(&docs));
    if docs.iter().any(Converted::has_loss) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn write_output(path: Option<&PathBuf>, yaml: &str) -> Result<(), String> {
    match path {
        Some(path) => std::fs::write(path, yaml).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
