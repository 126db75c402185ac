//! The temporary objects that route the CA's HTTP-01 request to the controller: per challenge, an
//! Ingress for exactly that host and path, and a Service in the Certificate's namespace that
//! reaches the controller's pods.
//!
//! A Service can only select pods of its own namespace, and the controller runs in another. So the
//! Service is of type `ExternalName`, naming the controller's HTTP-01 Service
//! (`--http01-service`, e.g. `ferrocert-http01.ferrocert.svc.cluster.local`). ingress-nginx,
//! Traefik (with `allowExternalNameServices`) and most Gateways route to such Services. The
//! solver's `serviceType` is accepted for manifests ported from cert-manager and not used.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::issuer::Http01Ingress;
use crate::labels;

/// One challenge to route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route<'a> {
    pub namespace: &'a str,
    pub certificate: &'a str,
    pub owner: OwnerReference,
    pub host: &'a str,
    pub token: &'a str,
}

impl Route<'_> {
    /// Name of both temporary objects: stable for the same certificate, host and token.
    pub fn object_name(&self) -> String {
        format!(
            "ferrocert-http01-{}",
            labels::short_hash(&format!(
                "{}/{}/{}",
                self.certificate, self.host, self.token
            ))
        )
    }

    fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.object_name()),
            namespace: Some(self.namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    labels::CERTIFICATE_NAME.to_string(),
                    labels::label_value(self.certificate),
                ),
                (labels::SOLVER.to_string(), "http01".to_string()),
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_VALUE.to_string(),
                ),
            ])),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// The ExternalName Service pointing at the controller's HTTP-01 Service.
    pub fn service(&self, controller_service: &str) -> Service {
        Service {
            metadata: self.meta(),
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".to_string()),
                external_name: Some(controller_service.to_string()),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_string()),
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
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
                rules: Some(vec![IngressRule {
                    // An Ingress host cannot be an IP address; for an IP identifier the rule matches
                    // any host, which is still only this challenge's unguessable token path.
                    host: self
                        .host
                        .parse::<std::net::IpAddr>()
                        .is_err()
                        .then(|| self.host.to_string()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some(format!("/.well-known/acme-challenge/{}", self.token)),
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
                }]),
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
    }
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

    #[test]
    fn service_points_at_the_controller() {
        let svc = route().service("ferrocert-http01.ferrocert.svc.cluster.local");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
        assert_eq!(
            spec.external_name.as_deref(),
            Some("ferrocert-http01.ferrocert.svc.cluster.local")
        );
        assert_eq!(svc.metadata.labels.unwrap()[labels::SOLVER], "http01");
    }
}
