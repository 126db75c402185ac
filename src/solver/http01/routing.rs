//! The temporary objects that route the CA's HTTP-01 request to the controller, per challenge and
//! in the Certificate's namespace: a Service *without a selector* (the controller's pods live in
//! another namespace), an EndpointSlice for it that lists the ready addresses of the controller's
//! own HTTP-01 Service (see [`super::backends`]), and an Ingress or a Gateway API HTTPRoute for
//! exactly the challenge's host and path.
//!
//! Not an `ExternalName` Service: Traefik and Contour refuse those by default, and load balancers
//! that route to endpoints (GKE NEG, the AWS Load Balancer Controller in IP mode) cannot use them.
//! A Service with an EndpointSlice works with every ingress controller and Gateway. The solver's
//! `serviceType` (`ClusterIP` or `NodePort`) is the Service's type.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::backends::Http01Backends;
use crate::api::issuer::{Http01GatewayRoute, Http01Ingress, ServiceType};
use crate::labels;

/// `endpointslice.kubernetes.io/managed-by` on the per-challenge EndpointSlices, so Kubernetes'
/// own EndpointSlice controllers leave them alone.
pub const ENDPOINT_SLICE_MANAGER: &str = "controller.ferrocert.dev";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming an EndpointSlice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Name of the port of the temporary Service and its EndpointSlice.
pub const PORT_NAME: &str = "http";
/// The Gateway API group and version of the temporary HTTPRoutes.
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// One challenge to route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route<'a> {
    pub namespace: &'a str,
    pub certificate: &'a str,
    pub owner: OwnerReference,
    pub host: &'a str,
    pub token: &'a str,
}

/// The challenge path of a token.
pub fn challenge_path(token: &str) -> String {
    format!("/.well-known/acme-challenge/{token}")
}

/// Name of every temporary object of one challenge: stable for the same certificate, host and
/// token, so a resumed reconcile finds (and a cleanup removes) the same objects.
pub fn object_name(certificate: &str, host: &str, token: &str) -> String {
    format!(
        "ferrocert-http01-{}",
        labels::short_hash(&format!("{certificate}/{host}/{token}"))
    )
}

impl Route<'_> {
    /// Name of all temporary objects of this challenge.
    pub fn object_name(&self) -> String {
        object_name(self.certificate, self.host, self.token)
    }

    fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.object_name()),
            namespace: Some(self.namespace.to_string()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                labels::CERTIFICATE_NAME.to_string(),
                labels::label_value(self.certificate),
            ),
            (labels::SOLVER.to_string(), "http01".to_string()),
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_VALUE.to_string(),
            ),
        ])
    }

    /// The selector-less Service the route's backend names.
    pub fn service(&self, service_type: ServiceType, backends: &Http01Backends) -> Service {
        let type_ = match service_type {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
        };
        Service {
            metadata: self.meta(),
            spec: Some(ServiceSpec {
                type_: Some(type_.to_string()),
                ports: Some(vec![ServicePort {
                    name: Some(PORT_NAME.to_string()),
                    port: 80,
                    target_port: Some(IntOrString::Int(i32::from(backends.port))),
                    protocol: Some("TCP".to_string()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    /// The EndpointSlice of the Service: the controller's ready HTTP-01 addresses.
    pub fn endpoint_slice(&self, backends: &Http01Backends) -> EndpointSlice {
        let mut meta = self.meta();
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(SERVICE_NAME_LABEL.to_string(), self.object_name());
        labels.insert(
            MANAGED_BY_LABEL.to_string(),
            ENDPOINT_SLICE_MANAGER.to_string(),
        );
        EndpointSlice {
            metadata: meta,
            address_type: backends.address_type().to_string(),
            endpoints: Some(endpoints(backends)),
            ports: Some(vec![EndpointPort {
                name: Some(PORT_NAME.to_string()),
                port: Some(i32::from(backends.port)),
                protocol: Some("TCP".to_string()),
                ..EndpointPort::default()
            }]),
        }
    }

    /// The Ingress for exactly this host and challenge path.
    pub fn ingress(&self, solver: &Http01Ingress) -> Ingress {
        let mut meta = self.meta();
        if let Some(class) = &solver.class {
            meta.annotations = Some(BTreeMap::from([(
                "kubernetes.io/ingress.class".to_string(),
                class.clone(),
            )]));
        }
        Ingress {
            metadata: meta,
            spec: Some(IngressSpec {
                ingress_class_name: solver.ingress_class_name.clone(),
                rules: Some(vec![self.ingress_rule()]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
    }

    /// The Ingress rule for exactly this host and challenge path, to the challenge's Service.
    pub fn ingress_rule(&self) -> IngressRule {
        IngressRule {
            // An Ingress host cannot be an IP address; for an IP identifier the rule matches
            // any host, which is still only this challenge's unguessable token path.
            host: self.hostname().map(str::to_string),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some(challenge_path(self.token)),
                    path_type: "Exact".to_string(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: self.object_name(),
                            port: Some(ServiceBackendPort {
                                number: Some(80),
                                ..ServiceBackendPort::default()
                            }),
                        }),
                        ..IngressBackend::default()
                    },
                }],
            }),
        }
    }

    /// The Gateway API HTTPRoute for exactly this host and challenge path, attached to the
    /// solver's parents. The solver's labels come first, so they cannot replace ferrocert's own.
    pub fn http_route(&self, solver: &Http01GatewayRoute) -> serde_json::Value {
        let mut labels = solver.labels.clone();
        labels.extend(self.labels());
        let mut spec = json!({
            "parentRefs": solver.parent_refs,
            "rules": [{
                "matches": [{"path": {"type": "Exact", "value": challenge_path(self.token)}}],
                "backendRefs": [{"name": self.object_name(), "port": 80}],
            }],
        });
        if let Some(host) = self.hostname() {
            spec["hostnames"] = json!([host]);
        }
        json!({
            "apiVersion": GATEWAY_API_VERSION,
            "kind": "HTTPRoute",
            "metadata": {
                "name": self.object_name(),
                "namespace": self.namespace,
                "labels": labels,
                "ownerReferences": [self.owner],
            },
            "spec": spec,
        })
    }

    /// The host to match: none for an IP identifier (not a valid Ingress host or hostname).
    fn hostname(&self) -> Option<&str> {
        self.host
            .parse::<std::net::IpAddr>()
            .is_err()
            .then_some(self.host)
    }
}

/// The endpoints of a per-challenge EndpointSlice (also what a re-sync writes).
pub fn endpoints(backends: &Http01Backends) -> Vec<Endpoint> {
    backends
        .addresses
        .iter()
        .map(|ip| Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        })
        .collect()
}

/// Annotation on a challenge's Service when its route is a rule added to an existing Ingress
/// (`http01.ingress.name`): that Ingress's name. Written with the Service, before the Ingress is
/// edited, so clean-up (which lists the Services) always knows which Ingress to restore.
pub const ANN_EDITED_INGRESS: &str = "ferrocert.dev/http01-edited-ingress";

/// Whether an Ingress rule routes only to the challenge Services named in `services`: one of the
/// rules an edit-in-place added.
fn is_challenge_rule_of(rule: &IngressRule, services: &[String]) -> bool {
    rule.http.as_ref().is_some_and(|h| {
        !h.paths.is_empty()
            && h.paths.iter().all(|p| {
                p.backend
                    .service
                    .as_ref()
                    .is_some_and(|s| services.contains(&s.name))
            })
    })
}

/// The rules of an edited Ingress without the ones added for `services`; `None` when it has none
/// of them (nothing to write).
pub fn rules_without(rules: &[IngressRule], services: &[String]) -> Option<Vec<IngressRule>> {
    let kept: Vec<IngressRule> = rules
        .iter()
        .filter(|r| !is_challenge_rule_of(r, services))
        .cloned()
        .collect();
    (kept.len() != rules.len()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route<'static> {
        Route {
            namespace: "shop",
            certificate: "web",
            owner: OwnerReference {
                name: "web".into(),
                uid: "u1".into(),
                ..Default::default()
            },
            host: "www.example.test",
            token: "tok123",
        }
    }

    #[test]
    fn ingress_routes_exactly_the_challenge_path_of_the_host() {
        let solver = Http01Ingress {
            ingress_class_name: Some("nginx".into()),
            ..Default::default()
        };
        let ing = route().ingress(&solver);
        let spec = ing.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("www.example.test"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(
            path.path.as_deref(),
            Some("/.well-known/acme-challenge/tok123")
        );
        assert_eq!(path.path_type, "Exact");
        assert_eq!(
            path.backend.service.as_ref().unwrap().name,
            route().object_name()
        );
        assert_eq!(ing.metadata.owner_references.unwrap()[0].uid, "u1");
    }

    #[test]
    fn ip_identifiers_get_a_hostless_rule() {
        let mut r = route();
        r.host = "192.0.2.1";
        let ing = r.ingress(&Http01Ingress::default());
        assert!(ing.spec.unwrap().rules.unwrap()[0].host.is_none());
    }

    #[test]
    fn legacy_class_becomes_the_annotation() {
        let solver = Http01Ingress {
            class: Some("traefik".into()),
            ..Default::default()
        };
        let ing = route().ingress(&solver);
        assert_eq!(
            ing.metadata.annotations.unwrap()["kubernetes.io/ingress.class"],
            "traefik"
        );
        assert!(ing.spec.unwrap().ingress_class_name.is_none());
    }

    fn backends() -> Http01Backends {
        Http01Backends {
            addresses: vec!["198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap()],
            port: 8089,
        }
    }

    #[test]
    fn service_has_no_selector_and_the_solver_type() {
        let svc = route().service(ServiceType::NodePort, &backends());
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert!(spec.selector.is_none());
        assert!(spec.external_name.is_none());
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some(PORT_NAME), 80));
        assert_eq!(svc.metadata.labels.unwrap()[labels::SOLVER], "http01");
        let cluster_ip = route().service(ServiceType::ClusterIP, &backends());
        assert_eq!(cluster_ip.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    }

    #[test]
    fn endpoint_slice_mirrors_the_backends_for_the_service() {
        let slice = route().endpoint_slice(&backends());
        let labels = slice.metadata.labels.unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], route().object_name());
        assert_eq!(labels[MANAGED_BY_LABEL], ENDPOINT_SLICE_MANAGER);
        assert_eq!(labels[labels::CERTIFICATE_NAME], "web");
        assert_eq!(slice.address_type, "IPv4");
        let eps = slice.endpoints.unwrap();
        let addrs: Vec<_> = eps.iter().map(|e| e.addresses[0].as_str()).collect();
        assert_eq!(addrs, ["198.18.0.1", "198.18.0.2"]);
        assert!(
            eps.iter()
                .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
        );
        let port = &slice.ports.unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some(PORT_NAME), Some(8089))
        );
        assert_eq!(slice.metadata.owner_references.unwrap()[0].uid, "u1");
    }

    #[test]
    fn http_route_matches_exactly_the_challenge_and_keeps_our_labels() {
        let solver = Http01GatewayRoute {
            parent_refs: vec![crate::api::issuer::ParentReference {
                name: "gw".into(),
                namespace: Some("infra".into()),
                section_name: Some("http".into()),
                ..Default::default()
            }],
            labels: BTreeMap::from([
                ("team".to_string(), "a".to_string()),
                (labels::SOLVER.to_string(), "overridden?".to_string()),
            ]),
            ..Default::default()
        };
        let r = route().http_route(&solver);
        assert_eq!(r["apiVersion"], GATEWAY_API_VERSION);
        assert_eq!(r["kind"], "HTTPRoute");
        assert_eq!(r["metadata"]["labels"]["team"], "a");
        assert_eq!(r["metadata"]["labels"][labels::SOLVER], "http01");
        assert_eq!(r["spec"]["hostnames"], json!(["www.example.test"]));
        assert_eq!(
            r["spec"]["parentRefs"],
            json!([{"name": "gw", "namespace": "infra", "sectionName": "http"}])
        );
        let rule = &r["spec"]["rules"][0];
        assert_eq!(
            rule["matches"][0]["path"],
            json!({"type": "Exact", "value": "/.well-known/acme-challenge/tok123"})
        );
        assert_eq!(rule["backendRefs"][0]["name"], route().object_name());
        assert_eq!(rule["backendRefs"][0]["port"], 80);
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "u1");
    }

    #[test]
    fn http_route_for_an_ip_has_no_hostnames() {
        let mut r = route();
        r.host = "192.0.2.1";
        let v = r.http_route(&Http01GatewayRoute::default());
        assert!(v["spec"].get("hostnames").is_none());
    }

    #[test]
    fn object_names_are_stable_and_distinct_per_challenge() {
        assert_eq!(
            route().object_name(),
            object_name("web", "www.example.test", "tok123")
        );
        assert_ne!(
            route().object_name(),
            object_name("web", "www.example.test", "tok124")
        );
        assert!(route().object_name().len() <= 63);
    }

    #[test]
    fn edit_in_place_rules_are_added_and_removed_exactly() {
        let r = route();
        let user_rule = IngressRule {
            host: Some("app.example.com".into()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".into()),
                    path_type: "Prefix".into(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: "app".into(),
                            port: None,
                        }),
                        ..IngressBackend::default()
                    },
                }],
            }),
        };
        let ours = r.ingress_rule();
        let rules = vec![user_rule.clone(), ours];
        assert_eq!(
            rules_without(&rules, &[r.object_name()]),
            Some(vec![user_rule.clone()])
        );
        assert_eq!(rules_without(&rules, &["other".into()]), None);
        assert_eq!(rules_without(&[user_rule], &[r.object_name()]), None);
    }
}
