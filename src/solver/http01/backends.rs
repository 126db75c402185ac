//! Where the controller's HTTP-01 listeners are: the ready addresses of the controller's own
//! HTTP-01 Service, read from its EndpointSlices (written by Kubernetes' EndpointSlice
//! controller in a cluster, by the test environment outside one). Every per-challenge
//! EndpointSlice mirrors them, so an ingress controller or Gateway routes the CA's request to
//! any replica (each answers every token).

use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The addresses and port the per-challenge EndpointSlices list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http01Backends {
    /// Ready addresses of one family (IPv4 when there are any, else IPv6), sorted, no duplicates.
    pub addresses: Vec<IpAddr>,
    /// The port the HTTP-01 listener serves on (the endpoint port, not the Service port).
    pub port: u16,
}

impl Http01Backends {
    /// `IPv4` or `IPv6`, as an EndpointSlice's `addressType`.
    pub fn address_type(&self) -> &'static str {
        match self.addresses.first() {
            Some(IpAddr::V6(_)) => "IPv6",
            _ => "IPv4",
        }
    }
}

/// Reads the backends from the EndpointSlices of the controller's HTTP-01 Service.
///
/// An endpoint counts when its `ready` condition is true or unset (the API's documented meaning
/// of unset). The port is the slice port named `port_name` if given and present, else the first
/// one. `None` when no slice has a ready address and a port: no replica can answer yet.
pub fn from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port_name: Option<&str>,
) -> Option<Http01Backends> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut port = None;
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let slice_port = slice.ports.as_ref().and_then(|ports| {
            let named = port_name.and_then(|n| ports.iter().find(|p| p.name.as_deref() == Some(n)));
            named.or(ports.first()).and_then(|p| p.port)
        });
        let Some(slice_port) = slice_port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                match address.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V4(_)) => v4.push(ip),
                    Ok(ip @ IpAddr::V6(_)) => v6.push(ip),
                    Err(_) => continue,
                }
                port.get_or_insert(slice_port);
            }
        }
    }
    let mut addresses = if v4.is_empty() { v6 } else { v4 };
    addresses.sort();
    addresses.dedup();
    Some(Http01Backends {
        port: port?,
        addresses,
    })
    .filter(|b| !b.addresses.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

    fn slice(
        kind: &str,
        endpoints: &[(&str, Option<bool>)],
        ports: &[(&str, i32)],
    ) -> EndpointSlice {
        EndpointSlice {
            address_type: kind.into(),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(a, ready)| Endpoint {
                        addresses: vec![a.to_string()],
                        conditions: Some(EndpointConditions {
                            ready: *ready,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: Some(n.to_string()),
                        port: Some(*p),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn ready_and_unknown_endpoints_count_not_ready_ones_do_not() {
        let s = slice(
            "IPv4",
            &[
                ("10.0.0.2", Some(true)),
                ("10.0.0.1", None),
                ("10.0.0.3", Some(false)),
            ],
            &[("http", 8089)],
        );
        let b = from_slices([&s], Some("http")).unwrap();
        assert_eq!(b.port, 8089);
        assert_eq!(
            b.addresses,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(b.address_type(), "IPv4");
    }

    #[test]
    fn addresses_across_slices_are_merged_and_deduplicated() {
        let a = slice("IPv4", &[("10.0.0.1", Some(true))], &[("http", 8089)]);
        let b = slice(
            "IPv4",
            &[("10.0.0.1", Some(true)), ("10.0.0.9", Some(true))],
            &[("http", 8089)],
        );
        assert_eq!(from_slices([&a, &b], None).unwrap().addresses.len(), 2);
    }

    #[test]
    fn the_named_port_wins_over_the_first() {
        let s = slice(
            "IPv4",
            &[("10.0.0.1", None)],
            &[("metrics", 9402), ("http", 8089)],
        );
        assert_eq!(from_slices([&s], Some("http")).unwrap().port, 8089);
        assert_eq!(from_slices([&s], None).unwrap().port, 9402);
        assert_eq!(from_slices([&s], Some("absent")).unwrap().port, 9402);
    }

    #[test]
    fn ipv4_is_preferred_and_ipv6_used_alone() {
        let v4 = slice("IPv4", &[("10.0.0.1", None)], &[("http", 8089)]);
        let v6 = slice("IPv6", &[("fd00::1", None)], &[("http", 8089)]);
        assert_eq!(
            from_slices([&v6, &v4], None).unwrap().address_type(),
            "IPv4"
        );
        let only6 = from_slices([&v6], None).unwrap();
        assert_eq!(only6.address_type(), "IPv6");
    }

    #[test]
    fn nothing_ready_or_no_port_means_no_backends() {
        let down = slice("IPv4", &[("10.0.0.1", Some(false))], &[("http", 8089)]);
        assert_eq!(from_slices([&down], None), None);
        let no_port = slice("IPv4", &[("10.0.0.1", Some(true))], &[]);
        assert_eq!(from_slices([&no_port], None), None);
        let fqdn = slice("FQDN", &[("a.example", Some(true))], &[("http", 80)]);
        assert_eq!(from_slices([&fqdn], None), None);
        assert_eq!(from_slices(std::iter::empty(), None), None);
    }
}
