//! The Issuer and ClusterIssuer spec: cert-manager's `spec.acme`, `spec.selfSigned` and `spec.ca`
//! to ferrocert's [`AcmeIssuer`](crate::api::AcmeIssuer),
//! [`SelfSignedIssuer`](crate::api::SelfSignedIssuer) and [`CaIssuer`](crate::api::CaIssuer).
//!
//! Each rule says whether what it drops or changes is a **loss** (exit code 1: the ferrocert
//! issuer would not do what the cert-manager one did) or **harmless** (exit code 0). A solver
//! that cannot be converted is left out of `solvers` (a loss); an issuer of a type ferrocert
//! lacks (`vault`, `venafi`) cannot be converted at all (a loss).

use serde_json::{Map, Value};

use super::certificate::lowercase_names;
use super::fields::{Invalid, Obj, invalid, put, secret_ref};
use super::notes::Notes;

/// The issuer types cert-manager has and ferrocert lacks, and what each does.
const UNSUPPORTED_TYPES: [(&str, &str); 2] = [
    ("vault", "certificates from HashiCorp Vault's PKI"),
    ("venafi", "certificates from Venafi (CyberArk)"),
];

/// cert-manager's DNS-01 providers that ferrocert lacks.
const UNSUPPORTED_DNS01: [&str; 4] = ["akamai", "azureDNS", "cloudDNS", "digitalocean"];

/// Converts `spec`; `None` when the issuer is of a type ferrocert lacks (nothing to write).
///
/// - `acme`, `selfSigned`, `ca`: converted (below).
/// - `vault`, `venafi`: not converted, a loss: ferrocert issues through ACME CAs or signs
///   itself, and has no equivalent.
/// - more than one type: unreadable, as cert-manager refuses it.
pub(super) fn convert_spec(
    mut spec: Obj,
    cluster_scoped: bool,
    notes: &mut Notes,
) -> Result<Option<Map<String, Value>>, Invalid> {
    let acme = spec.object("acme")?;
    let self_signed = spec.object("selfSigned")?;
    let ca = spec.object("ca")?;
    let unsupported: Vec<(&str, &str)> = UNSUPPORTED_TYPES
        .into_iter()
        .filter(|(key, _)| spec.take(key).is_some())
        .collect();
    let types: Vec<&str> = [
        ("acme", acme.is_some()),
        ("selfSigned", self_signed.is_some()),
        ("ca", ca.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .chain(unsupported.iter().map(|(key, _)| *key))
    .collect();
    if types.len() > 1 {
        return Err(invalid(
            "spec",
            format!(
                "sets more than one issuer type ({}); an issuer has exactly one",
                types.join(", ")
            ),
        ));
    }
    let mut out = Map::new();
    if let Some(acme) = acme {
        put(&mut out, "acme", convert_acme(acme, cluster_scoped, notes)?);
    } else if let Some(self_signed) = self_signed {
        put(
            &mut out,
            "selfSigned",
            convert_self_signed(self_signed, notes)?,
        );
    } else if let Some(ca) = ca {
        put(&mut out, "ca", convert_ca(ca, cluster_scoped, notes)?);
    } else {
        for (key, what) in &unsupported {
            notes.not_converted(
                &spec.path(key),
                None,
                format!(
                    "ferrocert issues through ACME CAs or signs itself (selfSigned, ca); an \
                     issuer of {what} has no ferrocert equivalent (keep cert-manager or another \
                     tool for it)"
                ),
            );
        }
        if unsupported.is_empty() && spec.map.is_empty() {
            return Err(invalid(
                "spec",
                "no issuer type: expected one of acme, ca, selfSigned, vault, venafi",
            ));
        }
        spec.finish(notes);
        return Ok(None);
    }
    spec.finish(notes);
    Ok(Some(out))
}

/// `spec.selfSigned`: `selfSigned: {}`, the same meaning (each certificate signed by its own
/// key).
///
/// - `crlDistributionPoints`: dropped; a loss when not empty (ferrocert writes no CRL
///   distribution points into the certificates it signs), harmless when empty.
fn convert_self_signed(mut self_signed: Obj, notes: &mut Notes) -> Result<Value, Invalid> {
    drop_extension(&mut self_signed, "crlDistributionPoints", notes)?;
    self_signed.finish(notes);
    Ok(Value::Object(Map::new()))
}

/// `spec.ca`: `secretName` kept: the same CA key pair (`tls.crt`, `tls.key`) signs.
///
/// - `crlDistributionPoints`, `ocspServers`, `issuingCertificateURLs`: dropped; a loss when not
///   empty (ferrocert writes no CRL distribution points and no authorityInfoAccess into the
///   certificates it signs), harmless when empty.
/// - for a ClusterIssuer, a note (harmless) names the Secret: ferrocert reads it from its own
///   namespace (`--cluster-resource-namespace`), not cert-manager's.
fn convert_ca(mut ca: Obj, cluster_scoped: bool, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    let secret = ca.required_string("secretName")?;
    for key in [
        "crlDistributionPoints",
        "ocspServers",
        "issuingCertificateURLs",
    ] {
        drop_extension(&mut ca, key, notes)?;
    }
    ca.finish(notes);
    if cluster_scoped {
        cluster_secrets(vec![secret.clone()], notes);
    }
    put(&mut out, "secretName", secret);
    Ok(Value::Object(out))
}

/// A list of URLs a cert-manager issuer writes into the certificates it signs, which ferrocert's
/// signer does not: dropped, a loss unless empty.
fn drop_extension(obj: &mut Obj, key: &str, notes: &mut Notes) -> Result<(), Invalid> {
    let field = obj.path(key);
    let Some(urls) = obj.strings(key)? else {
        return Ok(());
    };
    if urls.is_empty() {
        notes.dropped(&field, None, "empty");
        return Ok(());
    }
    let reason = match key {
        "crlDistributionPoints" => {
            "ferrocert writes no CRL distribution points into the certificates it signs (it \
             publishes no CRL): clients cannot look their revocation up there"
        }
        "ocspServers" => {
            "ferrocert writes no OCSP responder (authorityInfoAccess) into the certificates it \
             signs: clients cannot look their revocation up there"
        }
        _ => {
            "ferrocert writes no CA issuers URL (authorityInfoAccess) into the certificates it \
             signs: clients cannot fetch the CA certificate from there (tls.crt carries the \
             CA's chain)"
        }
    };
    notes.lost(&field, Some(&Value::from(urls)), reason);
    Ok(())
}

/// `spec.acme`. Kept with the same meaning: `server`, `email`, `privateKeySecretRef`,
/// `externalAccountBinding` (`keyID`, `keySecretRef`), `preferredChain`, `profile`, `caBundle`,
/// `skipTLSVerify`, and `solvers` (below). Otherwise:
///
/// - `email: ""`: dropped, harmless (no contact, as in cert-manager).
/// - `externalAccountBinding.keyAlgorithm`: dropped, harmless (deprecated in cert-manager and
///   ignored by it: the MAC is always HS256, as in ferrocert).
/// - `disableAccountKeyGeneration`: `false` dropped, harmless (ferrocert's behaviour); `true`
///   dropped, a loss: ferrocert generates the account key when its Secret is missing instead
///   of failing, so a missing Secret means a new account.
/// - `enableDurationFeature`: `false` dropped, harmless; `true` dropped, a loss: ferrocert
///   never asks the CA for a lifetime, so `duration` no longer reaches the CA.
/// - for a ClusterIssuer, a note (harmless) lists the Secrets it names: ferrocert reads them
///   from its own namespace (`--cluster-resource-namespace`), not cert-manager's.
fn convert_acme(mut acme: Obj, cluster_scoped: bool, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    let mut secrets = Vec::new();
    put(&mut out, "server", acme.required_string("server")?);
    match acme.string("email")? {
        Some(email) if email.is_empty() => {
            notes.dropped(&acme.path("email"), None, "empty: no contact address");
        }
        Some(email) => put(&mut out, "email", email),
        None => {}
    }
    let account_key = acme
        .object("privateKeySecretRef")?
        .ok_or_else(|| invalid(acme.path("privateKeySecretRef"), "required, but missing"))?;
    let account_key = secret_ref(account_key, notes)?;
    remember_secret(&account_key, &mut secrets);
    put(&mut out, "privateKeySecretRef", account_key);

    if let Some(mut eab) = acme.object("externalAccountBinding")? {
        let mut e = Map::new();
        put(&mut e, "keyID", eab.required_string("keyID")?);
        let key = eab
            .object("keySecretRef")?
            .ok_or_else(|| invalid(eab.path("keySecretRef"), "required, but missing"))?;
        let key = secret_ref(key, notes)?;
        remember_secret(&key, &mut secrets);
        put(&mut e, "keySecretRef", key);
        if let Some(alg) = eab.take("keyAlgorithm") {
            notes.dropped(
                &eab.path("keyAlgorithm"),
                Some(&alg),
                "deprecated and ignored by cert-manager; the binding's MAC is HS256, in \
                 ferrocert too",
            );
        }
        eab.finish(notes);
        put(&mut out, "externalAccountBinding", e);
    }
    for key in ["preferredChain", "profile", "caBundle"] {
        if let Some(value) = acme.string(key)?.filter(|v| !v.is_empty()) {
            put(&mut out, key, value);
        }
    }
    if let Some(skip) = acme.boolean("skipTLSVerify")? {
        put(&mut out, "skipTLSVerify", skip);
    }
    match acme.boolean("disableAccountKeyGeneration")? {
        Some(true) => notes.lost(
            &acme.path("disableAccountKeyGeneration"),
            Some(&Value::Bool(true)),
            "ferrocert has no such field: when the privateKeySecretRef Secret is missing it \
             generates a key and registers a new account instead of failing; create the \
             Secret before applying",
        ),
        Some(false) => notes.dropped(
            &acme.path("disableAccountKeyGeneration"),
            Some(&Value::Bool(false)),
            "ferrocert always generates a missing account key",
        ),
        None => {}
    }
    match acme.boolean("enableDurationFeature")? {
        Some(true) => notes.lost(
            &acme.path("enableDurationFeature"),
            Some(&Value::Bool(true)),
            "ferrocert never asks the CA for a lifetime: Certificates get the CA's default, \
             and their duration only times the renewal",
        ),
        Some(false) => notes.dropped(
            &acme.path("enableDurationFeature"),
            Some(&Value::Bool(false)),
            "ferrocert never asks the CA for a lifetime either",
        ),
        None => {}
    }

    let solvers_path = acme.path("solvers");
    if let Some(solvers) = acme.list("solvers")? {
        let mut converted = Vec::new();
        for (i, solver) in solvers.into_iter().enumerate() {
            let solver = Obj::new(solver, &format!("{solvers_path}[{i}]"))?;
            if let Some(s) = convert_solver(solver, cluster_scoped, &mut secrets, notes)? {
                converted.push(s);
            }
        }
        if !converted.is_empty() {
            put(&mut out, "solvers", converted);
        }
    }
    acme.finish(notes);

    if cluster_scoped {
        cluster_secrets(secrets, notes);
    }
    Ok(Value::Object(out))
}

/// The note (harmless) listing the Secrets a ClusterIssuer names, when it names any.
fn cluster_secrets(mut secrets: Vec<String>, notes: &mut Notes) {
    if secrets.is_empty() {
        return;
    }
    secrets.dedup();
    notes.kept(
        "Secrets",
        Some(&Value::from(secrets)),
        "a ClusterIssuer's Secrets are read from ferrocert's namespace \
         (--cluster-resource-namespace, the Helm release's), not cert-manager's: copy them there",
    );
}

fn remember_secret(secret_ref: &Value, secrets: &mut Vec<String>) {
    if let Some(name) = secret_ref.get("name").and_then(Value::as_str)
        && !secrets.iter().any(|s| s == name)
    {
        secrets.push(name.to_string());
    }
}

/// One solver: `selector` (`dnsNames`, `dnsZones`, `matchLabels`) is kept, `dnsNames`
/// lower-cased (changed, harmless); then `http01` or `dns01`. `None` when the solver cannot be
/// converted (the notes say why; a loss).
fn convert_solver(
    mut solver: Obj,
    cluster_scoped: bool,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    if let Some(mut selector) = solver.object("selector")? {
        let mut s = Map::new();
        if let Some(names) = selector.strings("dnsNames")? {
            let names = lowercase_names(names, &selector.path("dnsNames"), notes);
            if !names.is_empty() {
                put(&mut s, "dnsNames", names);
            }
        }
        if let Some(zones) = selector.strings("dnsZones")?
            && !zones.is_empty()
        {
            put(&mut s, "dnsZones", zones);
        }
        if let Some(labels) = selector.string_map("matchLabels")?
            && !labels.is_empty()
        {
            put(&mut s, "matchLabels", labels);
        }
        selector.finish(notes);
        if !s.is_empty() {
            put(&mut out, "selector", s);
        }
    }
    let http01 = solver.object("http01")?;
    let dns01 = solver.object("dns01")?;
    let solved = match (http01, dns01) {
        (Some(http01), None) => convert_http01(http01, notes)?.map(|v| ("http01", v)),
        (None, Some(dns01)) => {
            convert_dns01(dns01, cluster_scoped, secrets, notes)?.map(|v| ("dns01", v))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(&solver.path, "sets both http01 and dns01"));
        }
        (None, None) => return Err(invalid(&solver.path, "sets neither http01 nor dns01")),
    };
    solver.finish(notes);
    Ok(solved.map(|(key, value)| {
        put(&mut out, key, value);
        Value::Object(out)
    }))
}

/// `http01`: `ingress` or `gatewayHTTPRoute`.
///
/// - `ingress`: `ingressClassName`, `class`, `name` (edit in place) and `serviceType` kept.
/// - `gatewayHTTPRoute`: `parentRefs`, `labels` and `serviceType` kept; without `parentRefs` the
///   solver is not converted (a loss: ferrocert's HTTPRoute needs a parent).
/// - `podTemplate`: dropped, harmless: ferrocert runs no solver pods, it answers the challenges
///   itself.
/// - `ingress.ingressTemplate`: dropped; a loss when it sets labels or annotations (they often
///   steer the ingress controller, and ferrocert's temporary Ingress cannot carry them).
/// - no `serviceType`: kept unset with a note (harmless): cert-manager's default is
///   `NodePort`, ferrocert's `ClusterIP`.
fn convert_http01(mut http01: Obj, notes: &mut Notes) -> Result<Option<Value>, Invalid> {
    let ingress = http01.object("ingress")?;
    let route = http01.object("gatewayHTTPRoute")?;
    let converted = match (ingress, route) {
        (Some(ingress), None) => convert_ingress(ingress, notes)?.map(|v| ("ingress", v)),
        (None, Some(route)) => convert_route(route, notes)?.map(|v| ("gatewayHTTPRoute", v)),
        (Some(_), Some(_)) => {
            return Err(invalid(
                &http01.path,
                "sets both ingress and gatewayHTTPRoute",
            ));
        }
        (None, None) => {
            return Err(invalid(
                &http01.path,
                "sets neither ingress nor gatewayHTTPRoute",
            ));
        }
    };
    http01.finish(notes);
    Ok(converted.map(|(key, value)| {
        let mut out = Map::new();
        put(&mut out, key, value);
        Value::Object(out)
    }))
}

fn service_type(
    obj: &mut Obj,
    out: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Result<(), Invalid> {
    match obj.one_of("serviceType", &["ClusterIP", "NodePort"])? {
        Some(t) => put(out, "serviceType", t),
        None => notes.kept(
            &obj.path("serviceType"),
            None,
            "unset, so ClusterIP in ferrocert, where cert-manager's default is NodePort: set \
             NodePort if the ingress controller needs it (GCE without NEGs)",
        ),
    }
    Ok(())
}

fn drop_pod_template(obj: &mut Obj, notes: &mut Notes) {
    if obj.take("podTemplate").is_some() {
        notes.dropped(
            &obj.path("podTemplate"),
            None,
            "ferrocert runs no solver pods: its own replicas answer the challenges",
        );
    }
}

fn convert_ingress(mut ingress: Obj, notes: &mut Notes) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    for key in ["ingressClassName", "class", "name"] {
        if let Some(value) = ingress.string(key)?.filter(|v| !v.is_empty()) {
            put(&mut out, key, value);
        }
    }
    service_type(&mut ingress, &mut out, notes)?;
    drop_pod_template(&mut ingress, notes);
    if let Some(template) = ingress.take("ingressTemplate") {
        let metadata = template.get("metadata");
        let sets = |key: &str| {
            metadata
                .and_then(|m| m.get(key))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        };
        let field = ingress.path("ingressTemplate");
        if sets("labels") || sets("annotations") {
            notes.lost(
                &field,
                None,
                "ferrocert's temporary Ingress cannot carry extra labels or annotations",
            );
        } else {
            notes.dropped(&field, None, "it sets no labels or annotations");
        }
    }
    ingress.finish(notes);
    Ok(Some(Value::Object(out)))
}

fn convert_route(mut route: Obj, notes: &mut Notes) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    let parents_path = route.path("parentRefs");
    let parents = route.list("parentRefs")?.unwrap_or_default();
    let mut refs = Vec::new();
    for (i, parent) in parents.into_iter().enumerate() {
        let mut parent = Obj::new(parent, &format!("{parents_path}[{i}]"))?;
        let mut p = Map::new();
        put(&mut p, "name", parent.required_string("name")?);
        for key in ["namespace", "group", "kind", "sectionName"] {
            if let Some(value) = parent.string(key)? {
                put(&mut p, key, value);
            }
        }
        if let Some(port) = parent.integer("port")? {
            put(&mut p, "port", port);
        }
        parent.finish(notes);
        refs.push(Value::Object(p));
    }
    if let Some(labels) = route.string_map("labels")?
        && !labels.is_empty()
    {
        put(&mut out, "labels", labels);
    }
    service_type(&mut route, &mut out, notes)?;
    drop_pod_template(&mut route, notes);
    route.finish(notes);
    if refs.is_empty() {
        notes.not_converted(
            &parents_path,
            None,
            "missing: ferrocert attaches its HTTPRoute to the Gateways named here; the solver \
             is left out",
        );
        return Ok(None);
    }
    put(&mut out, "parentRefs", refs);
    Ok(Some(Value::Object(out)))
}

/// `dns01`: `cnameStrategy` kept; exactly one provider.
///
/// - `rfc2136`, `cloudflare`, `route53`, `acmeDNS`, `webhook`: converted (below).
/// - `akamai`, `azureDNS`, `cloudDNS`, `digitalocean`: not converted, a loss; the solver is left
///   out.
fn convert_dns01(
    mut dns01: Obj,
    cluster_scoped: bool,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    if let Some(strategy) = dns01.one_of("cnameStrategy", &["None", "Follow"])? {
        put(&mut out, "cnameStrategy", strategy);
    }
    let rfc2136 = dns01.object("rfc2136")?;
    let cloudflare = dns01.object("cloudflare")?;
    let route53 = dns01.object("route53")?;
    let acme_dns = dns01.object("acmeDNS")?;
    let webhook = dns01.object("webhook")?;
    let unsupported: Vec<(&str, Value)> = UNSUPPORTED_DNS01
        .iter()
        .filter_map(|key| dns01.take(key).map(|v| (*key, v)))
        .collect();
    let known = usize::from(rfc2136.is_some())
        + usize::from(cloudflare.is_some())
        + usize::from(route53.is_some())
        + usize::from(acme_dns.is_some())
        + usize::from(webhook.is_some())
        + unsupported.len();
    if known > 1 {
        return Err(invalid(&dns01.path, "sets more than one DNS-01 provider"));
    }
    if known == 0 {
        if dns01.map.is_empty() {
            return Err(invalid(&dns01.path, "sets no DNS-01 provider"));
        }
        // A provider this command does not know: reported by finish(), and the solver is left
        // out since it would have no provider.
        let keys: Vec<String> = dns01.map.keys().cloned().collect();
        notes.not_converted(
            &dns01.path,
            None,
            format!(
                "no DNS-01 provider ferrocert has ({}); the solver is left out",
                keys.join(", ")
            ),
        );
        dns01.finish(notes);
        return Ok(None);
    }
    let provider = if let Some(p) = rfc2136 {
        Some(("rfc2136", convert_rfc2136(p, secrets, notes)?))
    } else if let Some(p) = cloudflare {
        convert_cloudflare(p, secrets, notes)?.map(|v| ("cloudflare", v))
    } else if let Some(p) = route53 {
        Some((
            "route53",
            convert_route53(p, cluster_scoped, secrets, notes)?,
        ))
    } else if let Some(p) = acme_dns {
        Some((
            "acmeDNS",
            convert_acme_dns(p, cluster_scoped, secrets, notes)?,
        ))
    } else if let Some(p) = webhook {
        Some(("webhook", convert_webhook(p, notes)?))
    } else {
        for (key, _) in &unsupported {
            notes.not_converted(
                &dns01.path(key),
                None,
                format!(
                    "ferrocert has no {key} DNS provider; ferrocert's are rfc2136, cloudflare, \
                     route53, acmeDNS and webhook (a cert-manager webhook solver for {key} works \
                     unchanged): the solver is left out"
                ),
            );
        }
        None
    };
    dns01.finish(notes);
    Ok(provider.map(|(key, value)| {
        put(&mut out, key, value);
        Value::Object(out)
    }))
}

/// `rfc2136`: `nameserver`, `tsigKeyName`, `tsigAlgorithm`, `tsigSecretSecretRef` kept.
///
/// - `tsigAlgorithm` in another case (`hmacsha256`): upper-cased (changed, harmless:
///   cert-manager reads it case-insensitively, ferrocert's schema takes the upper-case names).
/// - with a key, `tsigAlgorithm` unset (cert-manager's default `HMACMD5`), `HMACMD5` or
///   `HMACSHA1`: kept, a loss: ferrocert signs with HMACSHA256 and HMACSHA512 only, so updates
///   would fail until the key is replaced.
/// - `protocol`: `UDP` dropped, harmless (ferrocert sends UDP, retrying over TCP when an answer
///   is truncated); `TCP` dropped, a loss (a server reachable over TCP only would not work).
fn convert_rfc2136(
    mut p: Obj,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Value, Invalid> {
    let mut out = Map::new();
    put(&mut out, "nameserver", p.required_string("nameserver")?);
    let key_name = p.string("tsigKeyName")?.filter(|k| !k.is_empty());
    let algorithm_field = p.path("tsigAlgorithm");
    let algorithm = match p.string("tsigAlgorithm")? {
        Some(a) if a.is_empty() => None,
        Some(a) => {
            let upper = a.to_ascii_uppercase();
            if !["HMACMD5", "HMACSHA1", "HMACSHA256", "HMACSHA512"].contains(&upper.as_str()) {
                return Err(invalid(
                    &algorithm_field,
                    format!(
                        "expected one of HMACMD5, HMACSHA1, HMACSHA256, HMACSHA512, found {a:?}"
                    ),
                ));
            }
            if upper != a {
                notes.changed(
                    &algorithm_field,
                    Some(&Value::String(a)),
                    format!("to {upper}: ferrocert's schema takes the upper-case name"),
                );
            }
            Some(upper)
        }
        None => None,
    };
    if key_name.is_some() {
        match algorithm.as_deref() {
            None | Some("HMACMD5") | Some("HMACSHA1") => notes.kept_lossy(
                &algorithm_field,
                algorithm.clone().map(Value::String).as_ref(),
                format!(
                    "{}ferrocert signs updates with HMACSHA256 or HMACSHA512 only: make a \
                     SHA-256 key (tsig-keygen -a hmac-sha256), then set tsigAlgorithm: HMACSHA256",
                    if algorithm.is_none() {
                        "unset, so HMACMD5 (cert-manager's default); "
                    } else {
                        ""
                    }
                ),
            ),
            _ => {}
        }
    }
    if let Some(name) = key_name {
        put(&mut out, "tsigKeyName", name);
    }
    if let Some(algorithm) = algorithm {
        put(&mut out, "tsigAlgorithm", algorithm);
    }
    if let Some(secret) = p.object("tsigSecretSecretRef")? {
        let secret = secret_ref(secret, notes)?;
        remember_secret(&secret, secrets);
        put(&mut out, "tsigSecretSecretRef", secret);
    }
    match p.one_of("protocol", &["UDP", "TCP"])?.as_deref() {
        Some("TCP") => notes.lost(
            &p.path("protocol"),
            Some(&Value::from("TCP")),
            "ferrocert sends updates over UDP (TCP only after a truncated answer)",
        ),
        Some(udp) => notes.dropped(
            &p.path("protocol"),
            Some(&Value::from(udp)),
            "ferrocert sends updates over UDP, as cert-manager's default",
        ),
        None => {}
    }
    p.finish(notes);
    Ok(Value::Object(out))
}

/// `webhook`: `groupName`, `solverName` and `config` kept: the same solver, called the same way.
/// A note says the controller needs RBAC `create` on the solver's resource (the chart's
/// `dns01Webhooks` value), as cert-manager's did.
fn convert_webhook(mut p: Obj, notes: &mut Notes) -> Result<Value, Invalid> {
    let mut out = Map::new();
    let group = p.required_string("groupName")?;
    let solver = p.required_string("solverName")?;
    notes.kept(
        &p.path("groupName"),
        Some(&Value::String(group.clone())),
        format!(
            "ferrocert's controller needs RBAC create on {solver} in API group {group}: add \
             {{groupName: {group}, solverNames: [{solver}]}} to the chart's dns01Webhooks"
        ),
    );
    put(&mut out, "groupName", group);
    put(&mut out, "solverName", solver);
    if let Some(config) = p.take("config") {
        put(&mut out, "config", config);
    }
    p.finish(notes);
    Ok(Value::Object(out))
}

/// `acmeDNS`: `host` and `accountSecretRef` kept (the same accounts JSON).
///
/// - an `http://` host on a namespaced Issuer: kept, a loss: ferrocert lets only ClusterIssuers
///   reach acme-dns over plain HTTP, so that Issuer's DNS-01 attempts would fail until the host
///   is https:// (or the issuer a ClusterIssuer).
fn convert_acme_dns(
    mut p: Obj,
    cluster_scoped: bool,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Value, Invalid> {
    let mut out = Map::new();
    let host_field = p.path("host");
    let host = p.required_string("host")?;
    if !cluster_scoped && host.starts_with("http://") {
        notes.kept_lossy(
            &host_field,
            Some(&Value::String(host.clone())),
            "ferrocert lets only a ClusterIssuer reach acme-dns over plain http://: use an \
             https:// host, or a ClusterIssuer",
        );
    }
    put(&mut out, "host", host);
    let account_field = p.path("accountSecretRef");
    let Some(account) = p.object("accountSecretRef")? else {
        return Err(invalid(&account_field, "is required"));
    };
    let account = secret_ref(account, notes)?;
    remember_secret(&account, secrets);
    put(&mut out, "accountSecretRef", account);
    p.finish(notes);
    Ok(Value::Object(out))
}

/// `cloudflare`: `apiTokenSecretRef` and `email` kept.
///
/// - `apiKeySecretRef` (the global API key) next to a token: dropped, harmless (the token is
///   used, as cert-manager does).
/// - `apiKeySecretRef` alone: not converted, a loss: ferrocert takes API tokens only; the solver
///   is left out.
fn convert_cloudflare(
    mut p: Obj,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Option<Value>, Invalid> {
    let mut out = Map::new();
    if let Some(email) = p.string("email")?.filter(|e| !e.is_empty()) {
        put(&mut out, "email", email);
    }
    let token = p.object("apiTokenSecretRef")?;
    let api_key_field = p.path("apiKeySecretRef");
    let api_key = p.take("apiKeySecretRef");
    let converted = match token {
        Some(token) => {
            let token = secret_ref(token, notes)?;
            remember_secret(&token, secrets);
            put(&mut out, "apiTokenSecretRef", token);
            if api_key.is_some() {
                notes.dropped(
                    &api_key_field,
                    None,
                    "the global API key is not supported; the API token is used",
                );
            }
            Some(Value::Object(out))
        }
        None if api_key.is_some() => {
            notes.not_converted(
                &api_key_field,
                None,
                "ferrocert takes Cloudflare API tokens only, not the global API key: create a \
                 token with Zone:Read and DNS:Edit and set apiTokenSecretRef; the solver is \
                 left out",
            );
            None
        }
        None => {
            return Err(invalid(
                &p.path,
                "sets neither apiTokenSecretRef nor apiKeySecretRef",
            ));
        }
    };
    p.finish(notes);
    Ok(converted)
}

/// `route53`: `region`, `hostedZoneID`, `accessKeyID`, `accessKeyIDSecretRef`,
/// `secretAccessKeySecretRef`, `role` kept.
///
/// - `auth` (cert-manager's `auth.kubernetes.serviceAccountRef`, tokens of a ServiceAccount of
///   its choosing): dropped, a loss: ferrocert uses static keys, or its own environment and
///   IRSA web identity.
/// - no keys on a namespaced Issuer: kept, with a note (harmless): the controller's own
///   credentials are used only with `--issuer-ambient-credentials`, as in cert-manager.
fn convert_route53(
    mut p: Obj,
    cluster_scoped: bool,
    secrets: &mut Vec<String>,
    notes: &mut Notes,
) -> Result<Value, Invalid> {
    let mut out = Map::new();
    for key in ["region", "hostedZoneID", "accessKeyID", "role"] {
        if let Some(value) = p.string(key)?.filter(|v| !v.is_empty()) {
            put(&mut out, key, value);
        }
    }
    for key in ["accessKeyIDSecretRef", "secretAccessKeySecretRef"] {
        if let Some(secret) = p.object(key)? {
            let secret = secret_ref(secret, notes)?;
            remember_secret(&secret, secrets);
            put(&mut out, key, secret);
        }
    }
    if let Some(auth) = p.take("auth") {
        let account = auth
            .pointer("/kubernetes/serviceAccountRef/name")
            .and_then(Value::as_str)
            .map(|n| format!(" (ServiceAccount {n})"))
            .unwrap_or_default();
        notes.lost(
            &p.path("auth"),
            None,
            format!(
                "ferrocert cannot authenticate as another ServiceAccount{account}: it uses \
                 static keys, or its own AWS environment or IRSA web identity (with role, \
                 assumed)"
            ),
        );
    }
    let has_keys = out.contains_key("secretAccessKeySecretRef");
    if !has_keys && !cluster_scoped {
        notes.kept(
            &p.path,
            None,
            "no keys: a namespaced Issuer may use the controller's own AWS credentials only \
             when it runs with --issuer-ambient-credentials, as in cert-manager",
        );
    }
    p.finish(notes);
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::note;
    use super::super::{Action, Note, Output, convert_document};

    fn issuer(kind: &str, acme: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": kind,
            "metadata": {"name": "le", "namespace": "shop"},
            "spec": {"acme": acme},
        })
    }

    fn acme(solvers: serde_json::Value) -> serde_json::Value {
        json!({
            "server": "https://acme-v02.api.letsencrypt.org/directory",
            "email": "ops@example.com",
            "privateKeySecretRef": {"name": "le-account"},
            "solvers": solvers,
        })
    }

    fn convert(doc: serde_json::Value) -> (serde_json::Value, Vec<Note>) {
        let c = convert_document(doc).expect("readable");
        match c.output {
            Output::Converted(v) => (v, c.notes),
            other => panic!("not converted: {other:?} {:#?}", c.notes),
        }
    }

    fn no_loss(notes: &[Note]) {
        assert!(!notes.iter().any(Note::is_loss), "{notes:#?}");
    }

    #[test]
    fn an_http01_issuer_converts_field_for_field() {
        let solvers = json!([{"http01": {"ingress": {"ingressClassName": "nginx",
                                                      "serviceType": "ClusterIP"}}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers.clone())));
        assert_eq!(out["apiVersion"], "ferrocert.dev/v1alpha1");
        assert_eq!(out["kind"], "Issuer");
        assert_eq!(out["metadata"], json!({"name": "le", "namespace": "shop"}));
        assert_eq!(out["spec"]["acme"], acme(solvers));
        assert!(notes.is_empty(), "{notes:#?}");
    }

    #[test]
    fn every_acme_field_ferrocert_has_is_kept() {
        let mut a = acme(json!([]));
        a["externalAccountBinding"] = json!({"keyID": "kid-1",
            "keySecretRef": {"name": "eab", "key": "secret"}});
        a["preferredChain"] = json!("ISRG Root X1");
        a["profile"] = json!("shortlived");
        a["caBundle"] = json!("LS0tLS1CRUdJTi0tLS0t");
        a["skipTLSVerify"] = json!(true);
        let (out, notes) = convert(issuer("Issuer", a.clone()));
        a.as_object_mut().unwrap().remove("solvers");
        assert_eq!(out["spec"]["acme"], a);
        no_loss(&notes);
    }

    #[test]
    fn eab_key_algorithm_is_dropped_harmlessly() {
        let mut a = acme(json!([]));
        a["externalAccountBinding"] = json!({"keyID": "kid", "keyAlgorithm": "HS256",
            "keySecretRef": {"name": "zerossl-eab", "key": "secret"}});
        let (out, notes) = convert(issuer("ClusterIssuer", a));
        assert!(
            out["spec"]["acme"]["externalAccountBinding"]
                .get("keyAlgorithm")
                .is_none()
        );
        let n = note(&notes, "spec.acme.externalAccountBinding.keyAlgorithm");
        assert_eq!(n.action, Action::Dropped);
        no_loss(&notes);
        // The ClusterIssuer's Secrets are listed.
        let n = note(&notes, "Secrets");
        assert_eq!(n.value.as_deref(), Some("[le-account, zerossl-eab]"));
        assert!(n.reason.contains("--cluster-resource-namespace"), "{n}");
    }

    #[test]
    fn account_key_generation_and_duration_feature() {
        let mut a = acme(json!([]));
        a["disableAccountKeyGeneration"] = json!(true);
        a["enableDurationFeature"] = json!(false);
        let (_, notes) = convert(issuer("Issuer", a));
        assert!(note(&notes, "spec.acme.disableAccountKeyGeneration").is_loss());
        assert!(!note(&notes, "spec.acme.enableDurationFeature").is_loss());
        let mut a = acme(json!([]));
        a["disableAccountKeyGeneration"] = json!(false);
        a["enableDurationFeature"] = json!(true);
        let (_, notes) = convert(issuer("Issuer", a));
        assert!(!note(&notes, "spec.acme.disableAccountKeyGeneration").is_loss());
        assert!(note(&notes, "spec.acme.enableDurationFeature").is_loss());
    }

    #[test]
    fn a_cluster_issuer_loses_its_namespace() {
        let (out, notes) = convert(issuer("ClusterIssuer", acme(json!([]))));
        assert_eq!(out["metadata"], json!({"name": "le"}));
        assert_eq!(notes[0].object, "ClusterIssuer le");
        assert_eq!(note(&notes, "metadata.namespace").action, Action::Dropped);
        no_loss(&notes);
    }

    #[test]
    fn ingress_solver_fields() {
        let solvers = json!([{"http01": {"ingress": {
            "name": "web",
            "podTemplate": {"spec": {"nodeSelector": {"a": "b"}}},
            "ingressTemplate": {"metadata": {"annotations": {"x": "y"}}},
        }}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        assert_eq!(
            out["spec"]["acme"]["solvers"],
            json!([{"http01": {"ingress": {"name": "web"}}}])
        );
        let base = "spec.acme.solvers[0].http01.ingress";
        assert!(!note(&notes, &format!("{base}.podTemplate")).is_loss());
        assert!(note(&notes, &format!("{base}.ingressTemplate")).is_loss());
        let n = note(&notes, &format!("{base}.serviceType"));
        assert_eq!(n.action, Action::Kept);
        assert!(n.reason.contains("NodePort"), "{n}");

        let solvers = json!([{"http01": {"ingress": {"class": "nginx", "serviceType": "NodePort",
            "ingressTemplate": {"metadata": {}}}}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        assert_eq!(
            out["spec"]["acme"]["solvers"][0]["http01"]["ingress"],
            json!({"class": "nginx", "serviceType": "NodePort"})
        );
        no_loss(&notes);
    }

    #[test]
    fn gateway_solver_fields() {
        let solvers = json!([{"http01": {"gatewayHTTPRoute": {
            "parentRefs": [{"name": "traefik", "namespace": "gw", "kind": "Gateway",
                            "sectionName": "web", "port": 80}],
            "labels": {"route": "acme"},
            "serviceType": "ClusterIP",
            "podTemplate": {"metadata": {"labels": {"a": "b"}}},
        }}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        assert_eq!(
            out["spec"]["acme"]["solvers"][0]["http01"]["gatewayHTTPRoute"],
            json!({"parentRefs": [{"name": "traefik", "namespace": "gw", "kind": "Gateway",
                                   "sectionName": "web", "port": 80}],
                   "labels": {"route": "acme"}, "serviceType": "ClusterIP"})
        );
        no_loss(&notes);

        let solvers = json!([{"http01": {"gatewayHTTPRoute": {"labels": {"a": "b"}}}},
                             {"http01": {"ingress": {"class": "nginx"}}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        assert_eq!(
            out["spec"]["acme"]["solvers"],
            json!([{"http01": {"ingress": {"class": "nginx"}}}])
        );
        let n = note(
            &notes,
            "spec.acme.solvers[0].http01.gatewayHTTPRoute.parentRefs",
        );
        assert_eq!(n.action, Action::NotConverted);
        assert!(n.is_loss());
    }

    #[test]
    fn selectors_are_kept_with_names_lowered() {
        let solvers = json!([
            {"selector": {"dnsNames": ["WWW.example.com"]},
             "http01": {"ingress": {"class": "nginx", "serviceType": "ClusterIP"}}},
            {"selector": {"dnsZones": ["example.com"], "matchLabels": {"use": "dns"}},
             "dns01": {"cnameStrategy": "Follow",
                       "cloudflare": {"apiTokenSecretRef": {"name": "cf", "key": "api-token"}}}},
            {"selector": {},
             "http01": {"ingress": {"class": "nginx", "serviceType": "ClusterIP"}}},
        ]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        let s = &out["spec"]["acme"]["solvers"];
        assert_eq!(s[0]["selector"], json!({"dnsNames": ["www.example.com"]}));
        assert_eq!(
            s[1],
            json!({"selector": {"dnsZones": ["example.com"], "matchLabels": {"use": "dns"}},
                   "dns01": {"cnameStrategy": "Follow",
                             "cloudflare": {"apiTokenSecretRef": {"name": "cf", "key": "api-token"}}}})
        );
        assert!(s[2].get("selector").is_none());
        assert_eq!(
            note(&notes, "spec.acme.solvers[0].selector.dnsNames[0]").action,
            Action::Changed
        );
        no_loss(&notes);
    }

    #[test]
    fn rfc2136_algorithms() {
        let solver = |p: serde_json::Value| json!([{"dns01": {"rfc2136": p}}]);
        let key = json!({"nameserver": "192.0.2.53:53", "tsigKeyName": "k",
                         "tsigAlgorithm": "hmacsha256",
                         "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
                         "protocol": "UDP"});
        let (out, notes) = convert(issuer("Issuer", acme(solver(key))));
        let p = &out["spec"]["acme"]["solvers"][0]["dns01"]["rfc2136"];
        assert_eq!(p["tsigAlgorithm"], "HMACSHA256");
        assert!(p.get("protocol").is_none());
        no_loss(&notes);

        let key = json!({"nameserver": "ns.example.com", "tsigKeyName": "k",
                         "tsigSecretSecretRef": {"name": "tsig", "key": "secret"}});
        let (out, notes) = convert(issuer("Issuer", acme(solver(key))));
        let p = &out["spec"]["acme"]["solvers"][0]["dns01"]["rfc2136"];
        assert!(p.get("tsigAlgorithm").is_none());
        let n = note(&notes, "spec.acme.solvers[0].dns01.rfc2136.tsigAlgorithm");
        assert!(n.is_loss());
        assert!(n.reason.starts_with("unset, so HMACMD5"), "{n}");
        assert_eq!(n.action, Action::Kept);

        let key = json!({"nameserver": "ns.example.com", "protocol": "TCP"});
        let (_, notes) = convert(issuer("Issuer", acme(solver(key))));
        assert!(note(&notes, "spec.acme.solvers[0].dns01.rfc2136.protocol").is_loss());
        assert_eq!(notes.len(), 1, "{notes:#?}");
    }

    #[test]
    fn cloudflare_global_keys() {
        let solver = |p: serde_json::Value| json!([{"dns01": {"cloudflare": p}}]);
        let (out, notes) = convert(issuer(
            "Issuer",
            acme(solver(json!({"email": "ops@example.com",
                               "apiKeySecretRef": {"name": "k", "key": "api-key"}}))),
        ));
        assert!(out["spec"]["acme"].get("solvers").is_none());
        let n = note(
            &notes,
            "spec.acme.solvers[0].dns01.cloudflare.apiKeySecretRef",
        );
        assert_eq!(n.action, Action::NotConverted);
        assert!(n.is_loss());

        let (out, notes) = convert(issuer(
            "Issuer",
            acme(solver(
                json!({"apiTokenSecretRef": {"name": "t", "key": "api-token"},
                               "apiKeySecretRef": {"name": "k", "key": "api-key"}}),
            )),
        ));
        assert_eq!(
            out["spec"]["acme"]["solvers"][0]["dns01"]["cloudflare"],
            json!({"apiTokenSecretRef": {"name": "t", "key": "api-token"}})
        );
        no_loss(&notes);
    }

    #[test]
    fn route53_fields() {
        let p = json!({"region": "eu-west-1", "hostedZoneID": "Z1", "role": "arn:aws:iam::1:role/dns",
                       "accessKeyIDSecretRef": {"name": "aws", "key": "access-key-id"},
                       "secretAccessKeySecretRef": {"name": "aws", "key": "secret-access-key"}});
        let (out, notes) = convert(issuer(
            "ClusterIssuer",
            acme(json!([{"dns01": {"route53": p.clone()}}])),
        ));
        assert_eq!(out["spec"]["acme"]["solvers"][0]["dns01"]["route53"], p);
        assert_eq!(
            note(&notes, "Secrets").value.as_deref(),
            Some("[le-account, aws]")
        );
        no_loss(&notes);

        let p = json!({"region": "eu-west-1",
                       "auth": {"kubernetes": {"serviceAccountRef": {"name": "dns"}}}});
        let (out, notes) = convert(issuer("Issuer", acme(json!([{"dns01": {"route53": p}}]))));
        assert_eq!(
            out["spec"]["acme"]["solvers"][0]["dns01"]["route53"],
            json!({"region": "eu-west-1"})
        );
        let n = note(&notes, "spec.acme.solvers[0].dns01.route53.auth");
        assert!(n.is_loss());
        assert!(n.reason.contains("ServiceAccount dns"), "{n}");
        let n = note(&notes, "spec.acme.solvers[0].dns01.route53");
        assert!(n.reason.contains("--issuer-ambient-credentials"), "{n}");
        assert!(!n.is_loss());
    }

    #[test]
    fn webhooks_are_kept_and_other_dns01_providers_drop_their_solver() {
        for (provider, config) in [
            (
                "azureDNS",
                json!({"subscriptionID": "s", "resourceGroupName": "r",
                                "hostedZoneName": "example.com"}),
            ),
            ("cloudDNS", json!({"project": "p"})),
            (
                "digitalocean",
                json!({"tokenSecretRef": {"name": "a", "key": "b"}}),
            ),
            ("akamai", json!({"serviceConsumerDomain": "x"})),
        ] {
            let solvers = json!([{"dns01": {provider: config}},
                                 {"http01": {"ingress": {"class": "nginx"}}}]);
            let (out, notes) = convert(issuer("Issuer", acme(solvers)));
            assert_eq!(out["spec"]["acme"]["solvers"].as_array().unwrap().len(), 1);
            let n = note(&notes, &format!("spec.acme.solvers[0].dns01.{provider}"));
            assert_eq!(n.action, Action::NotConverted, "{provider}");
            assert!(n.is_loss());
            assert!(n.reason.contains("left out"), "{n}");
        }
        let solvers = json!([{"dns01": {"webhook": {"groupName": "acme.example.com",
                                                    "solverName": "ovh",
                                                    "config": {"endpoint": "ovh-eu"}}}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers.clone())));
        assert_eq!(
            out["spec"]["acme"]["solvers"], solvers,
            "a webhook solver is kept as it is"
        );
        let n = note(&notes, "spec.acme.solvers[0].dns01.webhook.groupName");
        assert!(!n.is_loss());
        assert!(n.reason.contains("dns01Webhooks"), "{n}");
        // A provider no one knows.
        let (out, notes) = convert(issuer(
            "Issuer",
            acme(json!([{"dns01": {"ovh": {"endpoint": "x"}}}])),
        ));
        assert!(out["spec"]["acme"].get("solvers").is_none());
        assert!(note(&notes, "spec.acme.solvers[0].dns01").is_loss());
        assert!(note(&notes, "spec.acme.solvers[0].dns01.ovh").is_loss());
    }

    #[test]
    fn a_self_signed_issuer_converts_without_loss() {
        let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                         "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}});
        let (out, notes) = convert(doc);
        assert_eq!(out["apiVersion"], "ferrocert.dev/v1alpha1");
        assert_eq!(out["kind"], "ClusterIssuer");
        assert_eq!(out["spec"], json!({"selfSigned": {}}));
        assert!(notes.is_empty(), "{notes:#?}");

        let doc = |self_signed: serde_json::Value| {
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                   "metadata": {"name": "selfsigned", "namespace": "shop"},
                   "spec": {"selfSigned": self_signed}})
        };
        let (out, notes) = convert(doc(json!({"crlDistributionPoints": []})));
        assert_eq!(out["spec"], json!({"selfSigned": {}}));
        assert_eq!(
            note(&notes, "spec.selfSigned.crlDistributionPoints").action,
            Action::Dropped
        );
        no_loss(&notes);
    }

    #[test]
    fn self_signed_crl_distribution_points_are_a_loss() {
        let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                         "metadata": {"name": "selfsigned", "namespace": "shop"},
                         "spec": {"selfSigned": {
                             "crlDistributionPoints": ["http://crl.example.com/root.crl"]}}});
        let (out, notes) = convert(doc);
        assert_eq!(out["spec"], json!({"selfSigned": {}}));
        let n = note(&notes, "spec.selfSigned.crlDistributionPoints");
        assert!(n.is_loss());
        assert_eq!(n.action, Action::Dropped);
        assert_eq!(
            n.value.as_deref(),
            Some("[http://crl.example.com/root.crl]")
        );
        assert!(n.reason.contains("no CRL distribution points"), "{n}");
        assert_eq!(notes.len(), 1, "{notes:#?}");
    }

    #[test]
    fn a_ca_issuer_converts_without_loss() {
        let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                         "metadata": {"name": "ca-issuer", "namespace": "shop"},
                         "spec": {"ca": {"secretName": "ca-key-pair"}}});
        let (out, notes) = convert(doc);
        assert_eq!(out["kind"], "Issuer");
        assert_eq!(out["spec"], json!({"ca": {"secretName": "ca-key-pair"}}));
        assert!(notes.is_empty(), "{notes:#?}");

        // A ClusterIssuer's CA Secret moves to ferrocert's namespace; empty lists mean nothing.
        let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                         "metadata": {"name": "ca-issuer"},
                         "spec": {"ca": {"secretName": "ca-key-pair", "ocspServers": [],
                                         "crlDistributionPoints": [],
                                         "issuingCertificateURLs": []}}});
        let (out, notes) = convert(doc);
        assert_eq!(out["spec"], json!({"ca": {"secretName": "ca-key-pair"}}));
        let n = note(&notes, "Secrets");
        assert_eq!(n.value.as_deref(), Some("[ca-key-pair]"));
        assert!(n.reason.contains("--cluster-resource-namespace"), "{n}");
        assert_eq!(note(&notes, "spec.ca.ocspServers").action, Action::Dropped);
        no_loss(&notes);
    }

    #[test]
    fn ca_revocation_and_issuer_urls_are_a_loss() {
        let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                         "metadata": {"name": "ca-issuer", "namespace": "shop"},
                         "spec": {"ca": {
                             "secretName": "ca-key-pair",
                             "crlDistributionPoints": ["http://pki.example.com/ca.crl"],
                             "ocspServers": ["http://ocsp.example.com"],
                             "issuingCertificateURLs": ["http://pki.example.com/ca.crt"]}}});
        let (out, notes) = convert(doc);
        assert_eq!(out["spec"], json!({"ca": {"secretName": "ca-key-pair"}}));
        for (key, says) in [
            ("crlDistributionPoints", "no CRL distribution points"),
            ("ocspServers", "no OCSP responder"),
            ("issuingCertificateURLs", "no CA issuers URL"),
        ] {
            let n = note(&notes, &format!("spec.ca.{key}"));
            assert!(n.is_loss(), "{n}");
            assert_eq!(n.action, Action::Dropped);
            assert!(n.reason.contains(says), "{n}");
        }
        assert_eq!(notes.len(), 3, "{notes:#?}");
    }

    #[test]
    fn vault_and_venafi_issuers_are_not_converted() {
        for kind in ["vault", "venafi"] {
            let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                             "metadata": {"name": "x"}, "spec": {kind: {}}});
            let c = convert_document(doc).expect("readable");
            assert_eq!(c.output, Output::NotConverted);
            let n = note(&c.notes, &format!("spec.{kind}"));
            assert!(n.is_loss());
            assert_eq!(n.action, Action::NotConverted);
            assert!(n.reason.contains("no ferrocert equivalent"), "{n}");
        }
    }

    #[test]
    fn malformed_issuers_are_unreadable() {
        let doc = |spec: serde_json::Value| {
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                   "metadata": {"name": "x"}, "spec": spec})
        };
        let err = |spec| convert_document(doc(spec)).unwrap_err();
        assert_eq!(err(json!({})).field, "spec");
        let e = err(json!({"acme": acme(json!([])), "selfSigned": {}}));
        assert_eq!(e.field, "spec");
        assert!(e.message.contains("(acme, selfSigned)"), "{e}");
        let e = err(json!({"ca": {"secretName": "ca"}, "vault": {}}));
        assert!(e.message.contains("(ca, vault)"), "{e}");
        assert_eq!(err(json!({"ca": {}})).field, "spec.ca.secretName");
        assert_eq!(
            err(json!({"ca": {"secretName": "ca", "ocspServers": "http://ocsp"}})).field,
            "spec.ca.ocspServers"
        );
        let mut a = acme(json!([]));
        a.as_object_mut().unwrap().remove("server");
        assert_eq!(err(json!({"acme": a})).field, "spec.acme.server");
        let mut a = acme(json!([]));
        a.as_object_mut().unwrap().remove("privateKeySecretRef");
        assert_eq!(
            err(json!({"acme": a})).field,
            "spec.acme.privateKeySecretRef"
        );
        let e = err(json!({"acme": acme(json!([{"selector": {}}]))}));
        assert_eq!(e.field, "spec.acme.solvers[0]");
        assert_eq!(e.message, "sets neither http01 nor dns01");
        let e = err(
            json!({"acme": acme(json!([{"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "a"}},
                                                           "route53": {}}}]))}),
        );
        assert_eq!(e.field, "spec.acme.solvers[0].dns01");
        let e = err(
            json!({"acme": acme(json!([{"http01": {"ingress": {"serviceType": "LoadBalancer"}}}]))}),
        );
        assert_eq!(e.field, "spec.acme.solvers[0].http01.ingress.serviceType");
        let e = err(json!({"acme": acme(json!("none"))}));
        assert_eq!(e.message, "expected a list, found a string");
    }

    #[test]
    fn acme_dns_is_converted_and_plain_http_on_an_issuer_is_a_loss() {
        let solvers = json!([{"dns01": {"acmeDNS": {"host": "https://auth.example.com",
            "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}}}}]);
        let (out, notes) = convert(issuer("Issuer", acme(solvers)));
        assert_eq!(
            out["spec"]["acme"]["solvers"][0]["dns01"]["acmeDNS"],
            json!({"host": "https://auth.example.com",
                   "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}})
        );
        assert!(notes.iter().all(|n| !n.is_loss()), "{notes:?}");
        let solvers = json!([{"dns01": {"acmeDNS": {"host": "http://acme-dns.infra",
            "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}}}}]);
        let (_, notes) = convert(issuer("Issuer", acme(solvers.clone())));
        let n = note(&notes, "spec.acme.solvers[0].dns01.acmeDNS.host");
        assert!(n.is_loss() && n.reason.contains("ClusterIssuer"), "{n}");
        let (_, notes) = convert(issuer("ClusterIssuer", acme(solvers)));
        assert!(notes.iter().all(|n| !n.is_loss()), "{notes:?}");
    }
}
