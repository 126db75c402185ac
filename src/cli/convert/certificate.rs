//! The Certificate spec: cert-manager's `Certificate.spec` to ferrocert's
//! [`CertificateSpec`](crate::api::CertificateSpec).
//!
//! Each rule says whether what it drops or changes is a **loss** (exit code 1: the certificate
//! ferrocert obtains, or the Secret it writes, would lack something the cert-manager one had)
//! or **harmless** (exit code 0: the same certificate and Secret, or a difference that public
//! ACME CAs make anyway).
//!
//! A Certificate is converted without its issuer, so a rule cannot tell an ACME issuer from a
//! `selfSigned` or `ca` one. `isCA`, `usages` and `subject` mean what they mean in cert-manager:
//! honoured by the `selfSigned` and `ca` issuers, and decided by the CA with ACME. What the
//! output cannot say of them is a loss, even where only a `selfSigned` or `ca` issuer would miss
//! it (the note says so).

use serde_json::{Map, Value};

use super::fields::{Invalid, Obj, invalid, put};
use super::notes::Notes;

/// Said of a subject value ferrocert cannot write: a loss only for a `selfSigned` or `ca` issuer.
const ACME_IGNORES_SUBJECT: &str = "harmless with an ACME issuer, whose CA ignores the subject";

/// cert-manager's `X509Subject` lists, as ferrocert's [`X509Subject`](crate::api::X509Subject)
/// spells them.
const SUBJECT_LISTS: [&str; 7] = [
    "organizations",
    "countries",
    "organizationalUnits",
    "localities",
    "provinces",
    "streetAddresses",
    "postalCodes",
];

/// Converts `spec`. Fields are taken in a fixed order, so the notes come in that order.
pub(super) fn convert_spec(
    mut spec: Obj,
    notes: &mut Notes,
) -> Result<Map<String, Value>, Invalid> {
    let mut out = Map::new();
    convert_names_and_timing(&mut spec, &mut out, notes)?;
    let private_key_path = spec.path("privateKey");
    let private_key = spec.object("privateKey")?;
    put(
        &mut out,
        "privateKey",
        convert_private_key(private_key, &private_key_path, notes)?,
    );

    let issuer_ref = spec
        .object("issuerRef")?
        .ok_or_else(|| invalid(spec.path("issuerRef"), "required, but missing"))?;
    put(
        &mut out,
        "issuerRef",
        convert_issuer_ref(issuer_ref, notes)?,
    );

    convert_secret_template(&mut spec, &mut out, notes)?;

    // revisionHistoryLimit: dropped, harmless: ferrocert keeps no CertificateRequest history.
    if let Some(limit) = spec.take("revisionHistoryLimit") {
        notes.dropped(
            &spec.path("revisionHistoryLimit"),
            Some(&limit),
            "ferrocert makes no CertificateRequests, so there is no request history to limit",
        );
    }

    convert_subject_fields(&mut spec, &mut out, notes)?;
    convert_other_names(&mut spec, notes);
    convert_outputs(&mut spec, &mut out, notes)?;

    // nameConstraints: a loss (a CA certificate's extension, which ferrocert does not write).
    if let Some(value) = spec.take("nameConstraints") {
        notes.lost(
            &spec.path("nameConstraints"),
            Some(&value),
            "ferrocert has no nameConstraints: a CA certificate it signs (isCA) is unconstrained",
        );
    }

    // encodeUsagesInRequest: dropped, harmless (ferrocert puts no usages in its requests, and
    // ACME CAs pick the usages themselves).
    if let Some(value) = spec.take("encodeUsagesInRequest") {
        notes.dropped(
            &spec.path("encodeUsagesInRequest"),
            Some(&value),
            "ferrocert puts no usages in its requests; ACME CAs choose the key usages",
        );
    }

    spec.finish(notes);
    Ok(out)
}

/// secretName, commonName, dnsNames, ipAddresses, duration, renewBefore and
/// renewBeforePercentage.
fn convert_names_and_timing(
    spec: &mut Obj,
    out: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Result<(), Invalid> {
    // secretName, commonName, ipAddresses, duration, renewBefore, renewBeforePercentage: kept,
    // same meaning. (duration is the lifetime a selfSigned or ca issuer signs for; ferrocert never
    // asks an ACME CA for a lifetime, and neither does cert-manager unless the issuer sets
    // enableDurationFeature: there duration only times the renewal.)
    put(out, "secretName", spec.required_string("secretName")?);
    if let Some(cn) = spec.string("commonName")? {
        put(out, "commonName", cn);
    }

    // dnsNames: kept. Upper-case letters are lowered: changed, harmless (DNS names are
    // case-insensitive, and ferrocert's schema takes lowercase only).
    if let Some(names) = spec.strings("dnsNames")? {
        let names = lowercase_names(names, &spec.path("dnsNames"), notes);
        if !names.is_empty() {
            put(out, "dnsNames", names);
        }
    }
    if let Some(ips) = spec.strings("ipAddresses")?
        && !ips.is_empty()
    {
        put(out, "ipAddresses", ips);
    }
    for key in ["duration", "renewBefore"] {
        if let Some(value) = spec.string(key)? {
            put(out, key, value);
        }
    }
    if let Some(percentage) = spec.integer("renewBeforePercentage")? {
        put(out, "renewBeforePercentage", percentage);
    }
    Ok(())
}

/// secretTemplate: labels and annotations kept.
fn convert_secret_template(
    spec: &mut Obj,
    out: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Result<(), Invalid> {
    if let Some(mut template) = spec.object("secretTemplate")? {
        let mut t = Map::new();
        for key in ["labels", "annotations"] {
            if let Some(map) = template.string_map(key)?
                && !map.is_empty()
            {
                put(&mut t, key, map);
            }
        }
        template.finish(notes);
        if !t.is_empty() {
            put(out, "secretTemplate", t);
        }
    }
    Ok(())
}

/// usages, subject, literalSubject and isCA: what a selfSigned or ca issuer writes into the
/// certificate (an ACME CA decides them itself).
fn convert_subject_fields(
    spec: &mut Obj,
    out: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Result<(), Invalid> {
    // usages: kept (see convert_usages).
    if let Some(usages) = convert_usages(spec, notes)? {
        put(out, "usages", usages);
    }

    // subject: kept, one value per attribute (see convert_subject).
    if let Some(subject) = spec.object("subject")?
        && let Some(subject) = convert_subject(subject, notes)?
    {
        put(out, "subject", subject);
    }

    // literalSubject: dropped, a loss: ferrocert has no such field, so a selfSigned or ca issuer
    // builds the subject from commonName and subject instead (harmless with an ACME issuer).
    if let Some(value) = spec.take("literalSubject") {
        notes.lost(
            &spec.path("literalSubject"),
            Some(&value),
            format!(
                "ferrocert has no literalSubject: a selfSigned or ca issuer builds the subject \
                 from commonName and subject; {ACME_IGNORES_SUBJECT}"
            ),
        );
    }

    // isCA: kept. isCA: true without a subject name (commonName or subject.organizations) is
    // dropped, a loss: ferrocert's schema refuses a CA whose name would be empty.
    match spec.boolean("isCA")? {
        Some(true) if !has_ca_name(out) => notes.lost(
            &spec.path("isCA"),
            Some(&Value::Bool(true)),
            "ferrocert refuses a CA certificate without a subject name (the certificates it \
             signs name it as their issuer): set commonName or subject.organizations, then \
             isCA: true",
        ),
        Some(is_ca) => put(out, "isCA", is_ca),
        None => {}
    }
    Ok(())
}

/// emailAddresses, uris and otherNames: subject alternative names ferrocert does not write.
fn convert_other_names(spec: &mut Obj, notes: &mut Notes) {
    // emailAddresses, uris, otherNames: a loss when not empty (ferrocert's certificates carry
    // DNS names and IP addresses only, as ACME orders do); harmless when empty.
    for key in ["emailAddresses", "uris", "otherNames"] {
        if let Some(value) = spec.take(key) {
            let field = spec.path(key);
            if is_empty(&value) {
                notes.dropped(&field, None, "empty");
            } else {
                notes.lost(
                    &field,
                    Some(&value),
                    "ferrocert has no such field: its certificates carry only DNS and IP \
                     subject alternative names (ACME orders carry nothing else either)",
                );
            }
        }
    }
}

/// keystores and additionalOutputFormats: the extra Secret keys.
fn convert_outputs(
    spec: &mut Obj,
    out: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Result<(), Invalid> {
    // keystores: kept, same fields and Secret keys (ferrocert writes cert-manager's keystores).
    // A literal `password` is a loss (ferrocert reads passwords from Secrets only; its value is
    // never shown), and so is a created keystore without a passwordSecretRef (left out).
    if let Some(mut keystores) = spec.object("keystores")? {
        let mut kept = Map::new();
        for kind in ["jks", "pkcs12"] {
            if let Some(store) = keystores.object(kind)?
                && let Some(converted) = convert_keystore(store, kind, notes)?
            {
                put(&mut kept, kind, converted);
            }
        }
        keystores.finish(notes);
        if !kept.is_empty() {
            put(out, "keystores", kept);
        }
    }

    // additionalOutputFormats: kept (the same types write the same tls-combined.pem / key.der).
    if let Some(formats) = spec.list("additionalOutputFormats")? {
        if formats.is_empty() {
            notes.dropped(&spec.path("additionalOutputFormats"), None, "empty");
        } else {
            put(out, "additionalOutputFormats", formats);
        }
    }
    Ok(())
}

/// Lower-cases names (notes each one changed).
pub(super) fn lowercase_names(names: Vec<String>, field: &str, notes: &mut Notes) -> Vec<String> {
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let lower = name.to_ascii_lowercase();
            if lower != name {
                notes.changed(
                    &format!("{field}[{i}]"),
                    Some(&Value::String(name)),
                    format!(
                        "to {lower}: ferrocert takes lowercase names (DNS is case-insensitive)"
                    ),
                );
            }
            lower
        })
        .collect()
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// `usages`: kept, cert-manager's names. A `selfSigned` or `ca` issuer writes them (cert-manager's
/// default, `digital signature` and `key encipherment`, when there are none); an ACME CA picks
/// its own, in cert-manager too.
/// - a name cert-manager does not have: unreadable (cert-manager's schema refuses it).
/// - a name listed twice: listed once, changed, harmless (ferrocert's schema takes each once).
/// - an empty list: dropped, harmless (the default either way).
fn convert_usages(spec: &mut Obj, notes: &mut Notes) -> Result<Option<Vec<String>>, Invalid> {
    let field = spec.path("usages");
    let Some(usages) = spec.strings("usages")? else {
        return Ok(None);
    };
    if usages.is_empty() {
        notes.dropped(&field, None, "empty: the default usages either way");
        return Ok(None);
    }
    let mut kept: Vec<String> = Vec::with_capacity(usages.len());
    for (i, usage) in usages.into_iter().enumerate() {
        if serde_json::from_value::<crate::api::KeyUsage>(Value::String(usage.clone())).is_err() {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("not one of cert-manager's key usages (e.g. \"server auth\"): {usage:?}"),
            ));
        }
        if kept.contains(&usage) {
            notes.changed(
                &format!("{field}[{i}]"),
                Some(&Value::String(usage)),
                "listed once: it was listed twice, and ferrocert's schema takes each once",
            );
        } else {
            kept.push(usage);
        }
    }
    Ok(Some(kept))
}

/// `subject`: the same fields, kept, with the limits of ferrocert's schema:
///
/// - a list with more than one value: the first kept, changed, a loss (ferrocert writes one value
///   per attribute), harmless with an ACME issuer.
/// - a country that is two letters in lower case: upper-cased, changed, harmless; one that is not
///   two letters: dropped, a loss (ferrocert takes ISO 3166 codes only), harmless with an ACME
///   issuer.
/// - empty values and lists: dropped, harmless.
fn convert_subject(mut subject: Obj, notes: &mut Notes) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    for key in SUBJECT_LISTS {
        let field = subject.path(key);
        let Some(values) = subject.strings(key)? else {
            continue;
        };
        let mut kept = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let value_field = format!("{field}[{i}]");
            if value.is_empty() {
                notes.dropped(&value_field, None, "empty");
            } else if key == "countries" {
                kept.extend(country(value, &value_field, notes));
            } else {
                kept.push(value);
            }
        }
        if kept.len() > 1 {
            notes.changed_lossy(
                &field,
                Some(&Value::from(kept.clone())),
                format!(
                    "to [{}]: ferrocert writes one value per subject attribute; \
                     {ACME_IGNORES_SUBJECT}",
                    kept[0]
                ),
            );
            kept.truncate(1);
        }
        if !kept.is_empty() {
            put(&mut out, key, kept);
        }
    }
    if let Some(serial) = subject.string("serialNumber")?.filter(|s| !s.is_empty()) {
        put(&mut out, "serialNumber", serial);
    }
    subject.finish(notes);
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// One `subject.countries` value: a two-letter code, upper-cased, or `None` (noted as a loss).
fn country(value: String, field: &str, notes: &mut Notes) -> Option<String> {
    if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
        notes.lost(
            field,
            Some(&Value::String(value)),
            format!(
                "not a two-letter ISO 3166 code such as NL, which ferrocert's schema requires; \
                 {ACME_IGNORES_SUBJECT}"
            ),
        );
        return None;
    }
    let upper = value.to_ascii_uppercase();
    if upper != value {
        notes.changed(
            field,
            Some(&Value::String(value)),
            format!("to {upper}: ferrocert's schema takes upper-case country codes"),
        );
    }
    Some(upper)
}

/// Whether the converted spec names a CA: a non-empty `commonName` or `subject.organizations`,
/// as ferrocert's schema requires of `isCA: true`.
fn has_ca_name(out: &Map<String, Value>) -> bool {
    let cn = out
        .get("commonName")
        .and_then(Value::as_str)
        .is_some_and(|cn| !cn.is_empty());
    let organizations = out
        .get("subject")
        .and_then(|s| s.get("organizations"))
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty());
    cn || organizations
}

/// `privateKey`: `algorithm`, `size`, `encoding` and `rotationPolicy` keep their meaning, except:
///
/// - no `algorithm`: cert-manager makes RSA keys, ferrocert ECDSA P-256 ones, so the output
///   says `algorithm: RSA` to keep the key type. Changed, harmless.
/// - `size` ferrocert does not make: RSA keys are 2048, 3072 or 4096 bits in ferrocert, ECDSA
///   curves P-256 or P-384. An RSA size between those is rounded up (changed, harmless: a
///   stronger key); RSA above 4096 (cert-manager allows up to 8192) becomes 4096 and ECDSA 521
///   becomes 384 (changed, a loss: a weaker key than asked). An Ed25519 `size` is dropped,
///   harmless (cert-manager ignores it, ferrocert's schema refuses it).
/// - `encoding: PKCS1` with Ed25519: PKCS8 (changed, harmless: Ed25519 keys have no PKCS#1
///   form). `PKCS1` otherwise is kept with a note: SEC1 for ECDSA keys, as in cert-manager.
/// - no `rotationPolicy`: left unset, with a note. ferrocert's default is `Always`, as
///   cert-manager's since v1.18 (it was `Never` before: objects written for an older
///   cert-manager got a new key only when needed; set `Never` to keep that).
fn convert_private_key(
    private_key: Option<Obj>,
    path: &str,
    notes: &mut Notes,
) -> Result<Value, Invalid> {
    let mut out = Map::new();
    let mut pk = match private_key {
        Some(pk) => pk,
        None => Obj::new(Value::Object(Map::new()), path)?,
    };
    let algorithm = match pk.one_of("algorithm", &["RSA", "ECDSA", "Ed25519"])? {
        Some(algorithm) => algorithm,
        None => {
            notes.changed(
                &pk.path("algorithm"),
                None,
                "set to RSA, cert-manager's default when unset (ferrocert's default is ECDSA \
                 P-256: remove it to switch)",
            );
            "RSA".to_string()
        }
    };
    put(&mut out, "algorithm", algorithm.clone());

    if let Some(size) = pk.integer("size")? {
        let field = pk.path("size");
        let value = Value::from(size);
        let converted = match algorithm.as_str() {
            "RSA" => match size {
                2048 | 3072 | 4096 => Some(size),
                s if s < 2048 => {
                    return Err(invalid(field, "RSA keys are at least 2048 bits"));
                }
                s if s < 3072 => Some(round_up(&field, &value, 3072, notes)),
                s if s < 4096 => Some(round_up(&field, &value, 4096, notes)),
                _ => {
                    notes.changed_lossy(
                        &field,
                        Some(&value),
                        "to 4096: ferrocert makes RSA keys of 2048, 3072 or 4096 bits",
                    );
                    Some(4096)
                }
            },
            "ECDSA" => match size {
                256 | 384 => Some(size),
                521 => {
                    notes.changed_lossy(
                        &field,
                        Some(&value),
                        "to 384: ferrocert makes ECDSA keys on P-256 or P-384 only",
                    );
                    Some(384)
                }
                _ => return Err(invalid(field, "ECDSA keys are 256, 384 or 521 bits")),
            },
            _ => {
                notes.dropped(&field, Some(&value), "Ed25519 keys have no size");
                None
            }
        };
        if let Some(size) = converted {
            put(&mut out, "size", size);
        }
    }

    if let Some(encoding) = pk.one_of("encoding", &["PKCS1", "PKCS8"])? {
        let field = pk.path("encoding");
        let value = Value::String(encoding.clone());
        if algorithm == "Ed25519" && encoding == "PKCS1" {
            notes.changed(
                &field,
                Some(&value),
                "to PKCS8: Ed25519 keys have no PKCS#1 form",
            );
            put(&mut out, "encoding", "PKCS8");
        } else {
            if encoding == "PKCS1" {
                notes.kept(
                    &field,
                    Some(&value),
                    "as in cert-manager: PKCS#1 for RSA keys, SEC1 for ECDSA keys",
                );
            }
            put(&mut out, "encoding", encoding);
        }
    }

    match pk.one_of("rotationPolicy", &["Always", "Never"])? {
        Some(policy) => put(&mut out, "rotationPolicy", policy),
        None => notes.kept(
            &pk.path("rotationPolicy"),
            None,
            "unset, so Always in ferrocert (a new key at every issuance), as in cert-manager \
             since v1.18; before v1.18 the default was Never: set Never to keep the key",
        ),
    }
    pk.finish(notes);
    Ok(Value::Object(out))
}

fn round_up(field: &str, value: &Value, to: i64, notes: &mut Notes) -> i64 {
    notes.changed(
        field,
        Some(value),
        format!("to {to}: ferrocert makes RSA keys of 2048, 3072 or 4096 bits"),
    );
    to
}

/// `issuerRef`: `name` and `kind` (`Issuer`, `ClusterIssuer`) are kept.
///
/// - `group: cert-manager.io` (or empty): dropped, harmless: ferrocert's issuers are in its own
///   group, the default. `group: ferrocert.dev`: kept.
/// - any other group is an external issuer (AWS Private CA, Google CAS, step-issuer, ...):
///   not converted, a loss; the output keeps the name (point it at a ferrocert Issuer) and
///   drops group and kind.
/// - another `kind` with cert-manager's group: not converted, a loss; the kind is dropped.
fn convert_issuer_ref(mut issuer_ref: Obj, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    put(&mut out, "name", issuer_ref.required_string("name")?);
    let kind = issuer_ref.string("kind")?;
    let group = issuer_ref.string("group")?;
    let kind_field = issuer_ref.path("kind");
    let group_field = issuer_ref.path("group");
    match group.as_deref() {
        None | Some("") => {}
        Some("cert-manager.io") => notes.dropped(
            &group_field,
            Some(&Value::from("cert-manager.io")),
            "ferrocert's issuers are in its own group, ferrocert.dev, the default",
        ),
        Some(g) if g == crate::api::GROUP => put(&mut out, "group", g),
        Some(g) => {
            let what = match &kind {
                Some(kind) => format!("{kind}.{g}"),
                None => g.to_string(),
            };
            notes.not_converted(
                &group_field,
                Some(&Value::from(g)),
                format!(
                    "{what} is an external issuer; ferrocert issues only through its own \
                     Issuers and ClusterIssuers: the name is kept, point it at one of those"
                ),
            );
            issuer_ref.finish(notes);
            return Ok(Value::Object(out));
        }
    }
    match kind.as_deref() {
        None | Some("") => {}
        Some(k @ ("Issuer" | "ClusterIssuer")) => put(&mut out, "kind", k),
        Some(k) => notes.not_converted(
            &kind_field,
            Some(&Value::from(k)),
            "not Issuer or ClusterIssuer; an Issuer of the same name is referenced instead",
        ),
    }
    issuer_ref.finish(notes);
    Ok(Value::Object(out))
}

/// One keystore (`jks` or `pkcs12`) of `keystores`, or `None` when it cannot be kept.
fn convert_keystore(
    mut store: Obj,
    kind: &str,
    notes: &mut Notes,
) -> Result<Option<Map<String, Value>>, Invalid> {
    let mut out = Map::new();
    let create = store.boolean("create")?.unwrap_or(false);
    put(&mut out, "create", create);
    if store.take("password").is_some() {
        notes.lost(
            &store.path("password"),
            None,
            "ferrocert reads keystore passwords from a Secret only: put the password in a Secret \
             of the namespace and name it in passwordSecretRef",
        );
    }
    let mut has_ref = false;
    if let Some(mut reference) = store.object("passwordSecretRef")? {
        let mut r = Map::new();
        put(&mut r, "name", reference.required_string("name")?);
        match reference.string("key")? {
            Some(key) => {
                put(&mut r, "key", key);
                has_ref = true;
            }
            None => notes.lost(
                &reference.path("key"),
                None,
                "ferrocert needs the key of the password within the Secret",
            ),
        }
        reference.finish(notes);
        if has_ref {
            put(&mut out, "passwordSecretRef", r);
        }
    }
    let option = if kind == "jks" { "alias" } else { "profile" };
    if let Some(value) = store.string(option)? {
        put(&mut out, option, value);
    }
    let path = store.path("");
    store.finish(notes);
    if create && !has_ref {
        notes.lost(
            path.trim_end_matches('.'),
            None,
            "a keystore needs passwordSecretRef with name and key: none is created",
        );
        return Ok(None);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::note;
    use super::super::{Action, Note, convert_document};
    use super::*;

    fn cert(spec: Value) -> Value {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": spec,
        })
    }

    fn minimal() -> Value {
        json!({
            "secretName": "web-tls",
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "le"},
            "privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Always"},
        })
    }

    fn with(mut spec: Value, key: &str, value: Value) -> Value {
        spec[key] = value;
        spec
    }

    /// Converts, returning the output spec and the notes.
    fn convert(spec: Value) -> (Value, Vec<Note>) {
        let converted = convert_document(cert(spec)).expect("readable");
        match converted.output {
            super::super::Output::Converted(v) => (v["spec"].clone(), converted.notes),
            other => panic!("not converted: {other:?}"),
        }
    }

    #[test]
    fn the_fields_with_the_same_meaning_are_kept_and_nothing_is_noted() {
        let spec = json!({
            "secretName": "web-tls",
            "commonName": "web.example.com",
            "dnsNames": ["web.example.com", "*.web.example.com"],
            "ipAddresses": ["192.0.2.10"],
            "duration": "2160h",
            "renewBefore": "360h",
            "privateKey": {"algorithm": "RSA", "size": 4096, "encoding": "PKCS8",
                           "rotationPolicy": "Never"},
            "issuerRef": {"name": "le", "kind": "ClusterIssuer", "group": "ferrocert.dev"},
            "secretTemplate": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
        });
        let (out, notes) = convert(spec.clone());
        assert_eq!(out, spec);
        assert!(notes.is_empty(), "{notes:#?}");
    }

    #[test]
    fn renew_before_percentage_is_kept() {
        let (out, notes) = convert(with(minimal(), "renewBeforePercentage", json!(25)));
        assert_eq!(out["renewBeforePercentage"], 25);
        assert!(notes.is_empty(), "{notes:#?}");
    }

    #[test]
    fn the_default_key_algorithm_stays_rsa() {
        let mut spec = minimal();
        spec.as_object_mut().unwrap().remove("privateKey");
        let (out, notes) = convert(spec);
        assert_eq!(out["privateKey"], json!({"algorithm": "RSA"}));
        let n = note(&notes, "spec.privateKey.algorithm");
        assert_eq!(n.action, Action::Changed);
        assert!(!n.is_loss());
        let n = note(&notes, "spec.privateKey.rotationPolicy");
        assert_eq!(n.action, Action::Kept);
        assert!(n.reason.contains("v1.18"), "{n}");
        assert!(!n.is_loss());
    }

    #[test]
    fn pkcs1_is_kept_with_a_note_and_becomes_pkcs8_for_ed25519() {
        let spec = with(
            minimal(),
            "privateKey",
            json!({"algorithm": "ECDSA", "encoding": "PKCS1", "rotationPolicy": "Always"}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(out["privateKey"]["encoding"], "PKCS1");
        let n = note(&notes, "spec.privateKey.encoding");
        assert_eq!(
            n.to_string(),
            "Certificate shop/web: spec.privateKey.encoding PKCS1 kept: as in cert-manager: \
             PKCS#1 for RSA keys, SEC1 for ECDSA keys"
        );
        let spec = with(
            minimal(),
            "privateKey",
            json!({"algorithm": "Ed25519", "encoding": "PKCS1", "size": 256,
                   "rotationPolicy": "Always"}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(
            out["privateKey"],
            json!({"algorithm": "Ed25519", "encoding": "PKCS8", "rotationPolicy": "Always"})
        );
        assert_eq!(
            note(&notes, "spec.privateKey.encoding").action,
            Action::Changed
        );
        assert_eq!(note(&notes, "spec.privateKey.size").action, Action::Dropped);
        assert!(!notes.iter().any(Note::is_loss), "{notes:#?}");
    }

    #[test]
    fn key_sizes_ferrocert_does_not_make_are_rounded_and_smaller_ones_are_a_loss() {
        let pk = |alg: &str, size: i64| {
            with(
                minimal(),
                "privateKey",
                json!({"algorithm": alg, "size": size, "rotationPolicy": "Always"}),
            )
        };
        let (out, notes) = convert(pk("RSA", 8192));
        assert_eq!(out["privateKey"]["size"], 4096);
        assert!(note(&notes, "spec.privateKey.size").is_loss());
        let (out, notes) = convert(pk("RSA", 2560));
        assert_eq!(out["privateKey"]["size"], 3072);
        assert!(!note(&notes, "spec.privateKey.size").is_loss());
        let (out, notes) = convert(pk("ECDSA", 521));
        assert_eq!(out["privateKey"]["size"], 384);
        assert!(note(&notes, "spec.privateKey.size").is_loss());
        let err = convert_document(cert(pk("RSA", 1024))).unwrap_err();
        assert_eq!(err.field, "spec.privateKey.size");
        let err = convert_document(cert(pk("ECDSA", 512))).unwrap_err();
        assert_eq!(err.field, "spec.privateKey.size");
    }

    #[test]
    fn unknown_enum_values_are_unreadable() {
        let spec = with(minimal(), "privateKey", json!({"algorithm": "DSA"}));
        let err = convert_document(cert(spec)).unwrap_err();
        assert_eq!(err.field, "spec.privateKey.algorithm");
        assert!(err.message.contains("RSA, ECDSA, Ed25519"), "{err}");
        let spec = with(
            minimal(),
            "privateKey",
            json!({"rotationPolicy": "Sometimes"}),
        );
        assert_eq!(
            convert_document(cert(spec)).unwrap_err().field,
            "spec.privateKey.rotationPolicy"
        );
    }

    #[test]
    fn usages_subject_and_is_ca_are_kept_as_they_are() {
        let subject = json!({"organizations": ["Example Ltd"], "countries": ["NL"],
                             "organizationalUnits": ["Web"], "localities": ["Amsterdam"],
                             "provinces": ["Noord-Holland"], "streetAddresses": ["Dam 1"],
                             "postalCodes": ["1012 JS"], "serialNumber": "42"});
        let spec = with(
            with(
                with(minimal(), "subject", subject.clone()),
                "usages",
                json!(["server auth", "client auth", "digital signature"]),
            ),
            "isCA",
            json!(false),
        );
        let (out, notes) = convert(spec.clone());
        assert_eq!(out, spec);
        assert!(notes.is_empty(), "{notes:#?}");

        // A CA, as the first step of a private CA.
        let spec = json!({
            "secretName": "root-ca",
            "commonName": "Example Root CA",
            "isCA": true,
            "usages": ["cert sign", "crl sign"],
            "duration": "87600h",
            "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer"},
            "privateKey": {"algorithm": "ECDSA", "size": 384, "rotationPolicy": "Always"},
        });
        let (out, notes) = convert(spec.clone());
        assert_eq!(out, spec);
        assert!(notes.is_empty(), "{notes:#?}");
        let (out, notes) = convert(with(
            with(minimal(), "isCA", json!(true)),
            "subject",
            json!({"organizations": ["Example"]}),
        ));
        assert_eq!(out["isCA"], true);
        assert!(notes.is_empty(), "{notes:#?}");
    }

    #[test]
    fn usages_are_checked_and_listed_once() {
        let (out, notes) = convert(with(
            minimal(),
            "usages",
            json!(["server auth", "client auth", "server auth"]),
        ));
        assert_eq!(out["usages"], json!(["server auth", "client auth"]));
        let n = note(&notes, "spec.usages[2]");
        assert_eq!(n.action, Action::Changed);
        assert!(!n.is_loss());

        let (out, notes) = convert(with(minimal(), "usages", json!([])));
        assert!(out.get("usages").is_none());
        assert!(!note(&notes, "spec.usages").is_loss());

        let err = convert_document(cert(with(
            minimal(),
            "usages",
            json!(["server auth", "sign"]),
        )))
        .unwrap_err();
        assert_eq!(err.field, "spec.usages[1]");
        assert!(err.message.contains("\"sign\""), "{err}");
    }

    #[test]
    fn subject_values_ferrocert_cannot_write_are_a_loss() {
        let spec = with(
            minimal(),
            "subject",
            json!({"organizations": ["Example Ltd", "Example Holding"],
                   "countries": ["nl"], "localities": ["", "Utrecht"]}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(
            out["subject"],
            json!({"organizations": ["Example Ltd"], "countries": ["NL"],
                   "localities": ["Utrecht"]})
        );
        let n = note(&notes, "spec.subject.organizations");
        assert_eq!(n.action, Action::Changed);
        assert!(n.is_loss());
        assert!(n.reason.starts_with("to [Example Ltd]: "), "{n}");
        assert!(n.reason.contains("harmless with an ACME issuer"), "{n}");
        let n = note(&notes, "spec.subject.countries[0]");
        assert_eq!(n.action, Action::Changed);
        assert!(!n.is_loss());
        assert!(!note(&notes, "spec.subject.localities[0]").is_loss());

        let (out, notes) = convert(with(
            minimal(),
            "subject",
            json!({"countries": ["Netherlands"]}),
        ));
        assert!(out.get("subject").is_none());
        assert!(note(&notes, "spec.subject.countries[0]").is_loss());

        let (out, notes) = convert(with(minimal(), "literalSubject", json!("CN=web,O=Example")));
        assert!(out.get("literalSubject").is_none());
        assert!(note(&notes, "spec.literalSubject").is_loss());

        let (_, notes) = convert(with(
            minimal(),
            "subject",
            json!({"organizations": ["Example"], "title": "x"}),
        ));
        assert!(note(&notes, "spec.subject.title").is_loss());
    }

    #[test]
    fn a_ca_without_a_subject_name_loses_is_ca() {
        let (out, notes) = convert(with(minimal(), "isCA", json!(true)));
        assert!(out.get("isCA").is_none());
        let n = note(&notes, "spec.isCA");
        assert!(n.is_loss());
        assert!(
            n.reason.contains("set commonName or subject.organizations"),
            "{n}"
        );
    }

    #[test]
    fn keystores_are_kept_and_a_literal_password_is_a_loss_never_shown() {
        let keystores = json!({
            "pkcs12": {"create": true, "profile": "Modern2023",
                "passwordSecretRef": {"name": "p", "key": "k"}},
            "jks": {"create": false, "alias": "web", "passwordSecretRef": {"name": "p", "key": "k"}}
        });
        let (out, notes) = convert(with(minimal(), "keystores", keystores.clone()));
        assert_eq!(out["keystores"], keystores);
        assert!(
            notes.iter().all(|n| !n.field.starts_with("spec.keystores")),
            "{notes:?}"
        );

        let (out, notes) = convert(with(
            minimal(),
            "keystores",
            json!({"jks": {"create": true, "password": "hunter2-secret"}}),
        ));
        assert!(out.get("keystores").is_none());
        let n = note(&notes, "spec.keystores.jks.password");
        assert!(n.is_loss() && n.value.is_none(), "{n}");
        assert!(note(&notes, "spec.keystores.jks").is_loss());
        assert!(
            notes.iter().all(|n| !n.to_string().contains("hunter2")),
            "a password shows in the notes"
        );
    }

    #[test]
    fn other_sans_and_name_constraints_are_a_loss_unless_empty_output_formats_are_kept() {
        for (key, value) in [
            ("emailAddresses", json!(["ops@example.com"])),
            ("uris", json!(["spiffe://cluster.local/ns/shop/sa/web"])),
            (
                "otherNames",
                json!([{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "u@example.com"}]),
            ),
            ("nameConstraints", json!({"critical": true})),
        ] {
            let (out, notes) = convert(with(minimal(), key, value));
            assert!(out.get(key).is_none());
            let n = note(&notes, &format!("spec.{key}"));
            assert!(n.is_loss(), "{key}: {n}");
        }
        for key in [
            "emailAddresses",
            "uris",
            "otherNames",
            "additionalOutputFormats",
        ] {
            let (_, notes) = convert(with(minimal(), key, json!([])));
            assert!(!note(&notes, &format!("spec.{key}")).is_loss(), "{key}");
        }
        let formats = json!([{"type": "DER"}, {"type": "CombinedPEM"}]);
        let (out, notes) = convert(with(minimal(), "additionalOutputFormats", formats.clone()));
        assert_eq!(out["additionalOutputFormats"], formats);
        assert!(
            notes
                .iter()
                .all(|n| n.field != "spec.additionalOutputFormats"),
            "{notes:?}"
        );
    }

    #[test]
    fn revision_history_and_encode_usages_are_harmless() {
        let spec = with(
            with(minimal(), "revisionHistoryLimit", json!(3)),
            "encodeUsagesInRequest",
            json!(true),
        );
        let (out, notes) = convert(spec);
        assert!(out.get("revisionHistoryLimit").is_none());
        let n = note(&notes, "spec.revisionHistoryLimit");
        assert_eq!(n.action, Action::Dropped);
        assert!(n.reason.contains("no request history"), "{n}");
        assert!(!notes.iter().any(Note::is_loss), "{notes:#?}");
    }

    #[test]
    fn issuer_ref_groups() {
        let spec = with(
            minimal(),
            "issuerRef",
            json!({"name": "le", "kind": "ClusterIssuer", "group": "cert-manager.io"}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(
            out["issuerRef"],
            json!({"name": "le", "kind": "ClusterIssuer"})
        );
        assert!(!note(&notes, "spec.issuerRef.group").is_loss());

        let spec = with(
            minimal(),
            "issuerRef",
            json!({"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(out["issuerRef"], json!({"name": "pca"}));
        let n = note(&notes, "spec.issuerRef.group");
        assert!(n.is_loss());
        assert_eq!(n.action, Action::NotConverted);
        assert!(
            n.reason
                .contains("AWSPCAClusterIssuer.awspca.cert-manager.io"),
            "{n}"
        );

        let spec = with(
            minimal(),
            "issuerRef",
            json!({"name": "x", "kind": "Signer"}),
        );
        let (out, notes) = convert(spec);
        assert_eq!(out["issuerRef"], json!({"name": "x"}));
        assert!(note(&notes, "spec.issuerRef.kind").is_loss());
    }

    #[test]
    fn upper_case_dns_names_are_lowered() {
        let spec = with(
            minimal(),
            "dnsNames",
            json!(["Web.Example.com", "api.example.com"]),
        );
        let (out, notes) = convert(spec);
        assert_eq!(
            out["dnsNames"],
            json!(["web.example.com", "api.example.com"])
        );
        let n = note(&notes, "spec.dnsNames[0]");
        assert_eq!(n.action, Action::Changed);
        assert!(!n.is_loss());
    }

    #[test]
    fn unknown_fields_are_a_loss() {
        let (out, notes) = convert(with(minimal(), "futureField", json!({"x": 1})));
        assert!(out.get("futureField").is_none());
        assert!(note(&notes, "spec.futureField").is_loss());
        let spec = with(
            minimal(),
            "privateKey",
            json!({"algorithm": "ECDSA", "rotationPolicy": "Always", "curve": "x"}),
        );
        let (_, notes) = convert(spec);
        assert!(note(&notes, "spec.privateKey.curve").is_loss());
    }

    #[test]
    fn missing_or_mistyped_required_fields_are_unreadable() {
        let mut spec = minimal();
        spec.as_object_mut().unwrap().remove("secretName");
        assert_eq!(
            convert_document(cert(spec)).unwrap_err().field,
            "spec.secretName"
        );
        let mut spec = minimal();
        spec.as_object_mut().unwrap().remove("issuerRef");
        assert_eq!(
            convert_document(cert(spec)).unwrap_err().field,
            "spec.issuerRef"
        );
        let err =
            convert_document(cert(with(minimal(), "dnsNames", json!("a.example")))).unwrap_err();
        assert_eq!(err.field, "spec.dnsNames");
        assert_eq!(err.message, "expected a list, found a string");
        let err = convert_document(cert(with(minimal(), "dnsNames", json!(["a", 7])))).unwrap_err();
        assert_eq!(err.field, "spec.dnsNames[1]");
        let err = convert_document(cert(with(minimal(), "isCA", json!("yes")))).unwrap_err();
        assert_eq!(err.field, "spec.isCA");
    }
}
