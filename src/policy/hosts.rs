//! Which hosts other namespaces already serve, for the HTTP-01 host-ownership rule: before the
//! controller creates a challenge route for host H in namespace N, an Ingress or HTTPRoute of
//! another namespace that serves H means N is asking for a name someone else's route answers
//! (ingress controllers merge one host's rules across namespaces, so the CA's request would
//! reach our solver). Such a Certificate is refused unless a ClusterIssuer's policy says
//! `allowHostsServedElsewhere`.
//!
//! The index holds only the hosts of each object (never its contents), fed by metadata-light
//! watches; the controller's own temporary solver objects are not fed to it. Pure.

use std::collections::{BTreeSet, HashMap};

/// The kind of object that serves a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    Ingress,
    HttpRoute,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Ingress => "Ingress",
            RouteKind::HttpRoute => "HTTPRoute",
        }
    }
}

type ObjectKey = (RouteKind, String, String);

/// Hosts by serving object, and serving objects by host.
#[derive(Default, Debug)]
pub struct HostIndex {
    by_object: HashMap<ObjectKey, Vec<String>>,
    by_host: HashMap<String, BTreeSet<ObjectKey>>,
}

/// At most this many hosts are kept per object (a hostile object cannot grow the index
/// without bound; the API server already caps object size).
const MAX_HOSTS_PER_OBJECT: usize = 256;

impl HostIndex {
    /// Records the hosts `kind` `namespace/name` serves now (replacing what it served before).
    pub fn set(&mut self, kind: RouteKind, namespace: &str, name: &str, hosts: Vec<String>) {
        let key = (kind, namespace.to_string(), name.to_string());
        self.remove_key(&key);
        let mut hosts: Vec<String> = hosts
            .into_iter()
            .map(|h| normalize(&h))
            .filter(|h| !h.is_empty())
            .take(MAX_HOSTS_PER_OBJECT)
            .collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            return;
        }
        for host in &hosts {
            self.by_host
                .entry(host.clone())
                .or_default()
                .insert(key.clone());
        }
        self.by_object.insert(key, hosts);
    }

    /// Forgets an object that is gone.
    pub fn remove(&mut self, kind: RouteKind, namespace: &str, name: &str) {
        self.remove_key(&(kind, namespace.to_string(), name.to_string()));
    }

    /// Forgets every object of `kind` (before a full relist is fed again).
    pub fn clear(&mut self, kind: RouteKind) {
        let keys: Vec<ObjectKey> = self
            .by_object
            .keys()
            .filter(|k| k.0 == kind)
            .cloned()
            .collect();
        for key in keys {
            self.remove_key(&key);
        }
    }

    fn remove_key(&mut self, key: &ObjectKey) {
        let Some(hosts) = self.by_object.remove(key) else {
            return;
        };
        for host in hosts {
            if let Some(set) = self.by_host.get_mut(&host) {
                set.remove(key);
                if set.is_empty() {
                    self.by_host.remove(&host);
                }
            }
        }
    }

    /// The kind of an object of a namespace other than `namespace` that serves `host`: one for
    /// exactly that host, an Ingress wildcard one label above it, or an HTTPRoute wildcard at
    /// any level above it (Gateway API wildcards are suffix matches).
    pub fn served_elsewhere(&self, host: &str, namespace: &str) -> Option<RouteKind> {
        let host = normalize(host);
        let other = |set: &BTreeSet<ObjectKey>, kinds: &[RouteKind]| {
            set.iter()
                .find(|(k, ns, _)| ns != namespace && kinds.contains(k))
                .map(|(k, _, _)| *k)
        };
        if let Some(kind) = self
            .by_host
            .get(&host)
            .and_then(|s| other(s, &[RouteKind::Ingress, RouteKind::HttpRoute]))
        {
            return Some(kind);
        }
        let mut rest = host.as_str();
        let mut level = 0;
        while let Some((_, parent)) = rest.split_once('.') {
            let kinds: &[RouteKind] = if level == 0 {
                &[RouteKind::Ingress, RouteKind::HttpRoute]
            } else {
                &[RouteKind::HttpRoute]
            };
            if let Some(kind) = self
                .by_host
                .get(&format!("*.{parent}"))
                .and_then(|s| other(s, kinds))
            {
                return Some(kind);
            }
            rest = parent;
            level += 1;
        }
        None
    }

    /// How many objects are indexed.
    pub fn len(&self) -> usize {
        self.by_object.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_served_by_another_namespace_is_found_and_ones_own_is_not() {
        let mut index = HostIndex::default();
        index.set(
            RouteKind::Ingress,
            "victim",
            "web",
            vec!["App.Example.Test".into()],
        );
        assert_eq!(
            index.served_elsewhere("app.example.test", "attacker"),
            Some(RouteKind::Ingress)
        );
        assert_eq!(index.served_elsewhere("app.example.test", "victim"), None);
        assert_eq!(
            index.served_elsewhere("other.example.test", "attacker"),
            None
        );
    }

    #[test]
    fn ingress_wildcards_cover_one_label_and_route_wildcards_any() {
        let mut index = HostIndex::default();
        index.set(RouteKind::Ingress, "a", "i", vec!["*.shop.test".into()]);
        index.set(RouteKind::HttpRoute, "b", "r", vec!["*.gw.test".into()]);
        assert_eq!(
            index.served_elsewhere("x.shop.test", "z"),
            Some(RouteKind::Ingress)
        );
        assert_eq!(index.served_elsewhere("y.x.shop.test", "z"), None);
        assert_eq!(index.served_elsewhere("shop.test", "z"), None);
        assert_eq!(
            index.served_elsewhere("y.x.gw.test", "z"),
            Some(RouteKind::HttpRoute)
        );
        assert_eq!(
            index.served_elsewhere("x.gw.test", "z"),
            Some(RouteKind::HttpRoute)
        );
    }

    #[test]
    fn changed_and_removed_objects_no_longer_serve_their_old_hosts() {
        let mut index = HostIndex::default();
        index.set(RouteKind::Ingress, "a", "i", vec!["one.test".into()]);
        index.set(RouteKind::Ingress, "a", "i", vec!["two.test".into()]);
        assert_eq!(index.served_elsewhere("one.test", "z"), None);
        assert!(index.served_elsewhere("two.test", "z").is_some());
        index.remove(RouteKind::Ingress, "a", "i");
        assert!(index.served_elsewhere("two.test", "z").is_none());
        assert!(index.is_empty());
        index.set(RouteKind::HttpRoute, "a", "r", vec!["three.test".into()]);
        index.set(RouteKind::Ingress, "a", "i", vec!["three.test".into()]);
        index.clear(RouteKind::Ingress);
        assert_eq!(
            index.served_elsewhere("three.test", "z"),
            Some(RouteKind::HttpRoute)
        );
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn an_object_with_very_many_hosts_is_capped() {
        let mut index = HostIndex::default();
        let hosts = (0..10_000).map(|i| format!("h{i}.test")).collect();
        index.set(RouteKind::Ingress, "a", "i", hosts);
        assert!(index.by_host.len() <= MAX_HOSTS_PER_OBJECT);
    }
}
