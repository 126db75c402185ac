//! DNS-01 building blocks against the local BIND (`tests/env/up.sh`; `source .testenv/env.sh`):
//! RFC 2136 updates signed with TSIG, the propagation checker, CNAME following, SOA minimum.
//!
//! Fails (never skips) when the environment is missing. Every name is unique to the test run
//! (pid and a per-test tag) because the zones are shared, and every record created is removed,
//! also when an assertion fails (a guard deletes them on drop).

use std::time::Duration;

use ferrocert::api::issuer::{Rfc2136Provider, TsigAlgorithm};
use ferrocert::solver::dns01::propagation::{
    CheckResult, PropagationChecker, PropagationConfig, PropagationReport,
};
use ferrocert::solver::dns01::rfc2136::{Rfc2136, TsigKey};
use ferrocert::solver::dns01::{Dns01Error, DnsProvider, challenge_name, txt_value};

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the local environment's BIND. Run `tests/env/up.sh` \
             and `source .testenv/env.sh` (tests/run.sh does both)"
        )
    })
}

struct Env {
    server: String,
    zone: String,
    zone2: String,
    key_name: String,
    algorithm: TsigAlgorithm,
    secret: String,
}

fn env() -> Env {
    let algorithm: TsigAlgorithm =
        serde_json::from_value(serde_json::Value::String(env_var("TSIG_ALGORITHM")))
            .expect("TSIG_ALGORITHM is one of the CRD's values (HMACSHA256, ...)");
    Env {
        server: env_var("DNS_SERVER"),
        zone: env_var("TEST_ZONE"),
        zone2: env_var("TEST_ZONE2"),
        key_name: env_var("TSIG_KEY_NAME"),
        algorithm,
        secret: env_var("TSIG_SECRET"),
    }
}

impl Env {
    /// The provider as the controller builds it: from the Issuer spec and the Secret's bytes.
    fn provider(&self) -> Rfc2136 {
        let spec = Rfc2136Provider {
            nameserver: self.server.clone(),
            tsig_key_name: Some(self.key_name.clone()),
            tsig_algorithm: Some(self.algorithm),
            tsig_secret_secret_ref: None,
        };
        Rfc2136::from_spec(&spec, Some(self.secret.as_bytes())).expect("provider from the env")
    }

    /// The checker pointed at BIND: it is both the resolver and (on its non-standard port) the
    /// zones' only authoritative nameserver `ns.<zone>` = 127.0.0.1.
    fn checker(&self) -> PropagationChecker {
        let port = self
            .server
            .rsplit_once(':')
            .map_or(53, |(_, p)| p.parse().unwrap());
        PropagationChecker::new(PropagationConfig {
            resolvers: vec![self.server.clone()],
            authoritative_port: port,
            ..Default::default()
        })
        .expect("checker")
    }

    /// A name unique to this run and test, under `zone`.
    fn unique(&self, tag: &str, zone: &str) -> String {
        format!("{tag}-{}.{zone}", std::process::id())
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Deletes what a test created, even when it panics half-way.
struct Cleanup {
    provider: Rfc2136,
    txt: Vec<(String, String)>,
    cnames: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let rt = rt();
        for (name, value) in &self.txt {
            if let Err(e) = rt.block_on(self.provider.delete_txt(name, value)) {
                eprintln!("cleanup of TXT {value} at {name} failed: {e}");
            }
        }
        for name in &self.cnames {
            if let Err(e) = rt.block_on(self.provider.delete_cname(name)) {
                eprintln!("cleanup of CNAME at {name} failed: {e}");
            }
        }
    }
}

fn status_of(report: &PropagationReport) -> Vec<&CheckResult> {
    report.servers.iter().map(|s| &s.result).collect()
}

#[test]
fn two_values_at_one_name_come_and_go_independently() {
    let env = env();
    let provider = env.provider();
    let checker = env.checker();
    // A wildcard and its apex share one challenge name.
    let base = env.unique("wild", &env.zone);
    let name = challenge_name(&format!("*.{base}"));
    assert_eq!(name, challenge_name(&base));
    let wildcard_value = txt_value(&format!("token-w.{}", std::process::id()));
    let apex_value = txt_value(&format!("token-a.{}", std::process::id()));
    let _cleanup = Cleanup {
        provider: provider.clone(),
        txt: vec![
            (name.clone(), wildcard_value.clone()),
            (name.clone(), apex_value.clone()),
        ],
        cnames: vec![],
    };
    let rt = rt();
    rt.block_on(async {
        let before = checker.check(&name, &wildcard_value).await.expect("check");
        assert!(!before.all_visible(), "{}", before.summary());
        assert_eq!(before.zone.zone, env.zone);
        assert_eq!(before.servers.len(), 1, "{before:?}");
        assert_eq!(before.servers[0].server, format!("ns.{}", env.zone));

        // Through the trait, as the controller will use it.
        let dynamic: &dyn DnsProvider = &provider;
        dynamic
            .present(&name, &wildcard_value)
            .await
            .expect("present the wildcard's value");
        dynamic
            .present(&name, &apex_value)
            .await
            .expect("present the apex's value");
        // Presenting again is harmless.
        dynamic
            .present(&name, &apex_value)
            .await
            .expect("present again");

        for value in [&wildcard_value, &apex_value] {
            let report = checker.check(&name, value).await.expect("check");
            assert!(report.all_visible(), "{}", report.summary());
            assert_eq!(
                status_of(&report),
                [&CheckResult::Visible],
                "{}",
                report.summary()
            );
        }

        dynamic
            .clean_up(&name, &wildcard_value)
            .await
            .expect("clean up one");
        let gone = checker.check(&name, &wildcard_value).await.expect("check");
        assert_eq!(
            status_of(&gone),
            [&CheckResult::NotVisible {
                rcode: "NOERROR".into(),
                other_values: 1
            }],
            "{}",
            gone.summary()
        );
        let kept = checker.check(&name, &apex_value).await.expect("check");
        assert!(
            kept.all_visible(),
            "the other value stays: {}",
            kept.summary()
        );

        dynamic
            .clean_up(&name, &apex_value)
            .await
            .expect("clean up the other");
        // Cleaning up twice is harmless.
        dynamic
            .clean_up(&name, &apex_value)
            .await
            .expect("clean up again");
        let none = checker.check(&name, &apex_value).await.expect("check");
        assert!(
            matches!(
                status_of(&none)[..],
                [CheckResult::NotVisible {
                    other_values: 0,
                    ..
                }]
            ),
            "no TXT left: {}",
            none.summary()
        );
    });
}

#[test]
fn a_wrong_tsig_secret_is_refused_with_the_servers_answer() {
    let env = env();
    let name = challenge_name(&env.unique("badkey", &env.zone));
    let rt = rt();

    // Right key name, wrong secret: BIND answers NOTAUTH with TSIG error BADSIG.
    let wrong = TsigKey::from_base64(
        &env.key_name,
        env.algorithm,
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .unwrap();
    let provider = Rfc2136::new(&env.server, Some(wrong)).unwrap();
    let err = rt.block_on(provider.present(&name, "v")).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, Dns01Error::UpdateRejected { rcode, .. } if rcode == "NOTAUTH" || rcode == "REFUSED"),
        "{message}"
    );
    assert!(
        message.contains("NOTAUTH") && message.contains("BADSIG"),
        "{message}"
    );
    assert!(
        message.contains(&env.server) && message.contains(&env.zone),
        "{message}"
    );
    eprintln!("wrong secret: {message}");

    // A key BIND does not know: NOTAUTH, BADKEY.
    let unknown =
        TsigKey::from_base64("no-such-key", env.algorithm, env.secret.as_bytes()).unwrap();
    let provider = Rfc2136::new(&env.server, Some(unknown)).unwrap();
    let message = rt
        .block_on(provider.present(&name, "v"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("NOTAUTH") && message.contains("BADKEY"),
        "{message}"
    );
    eprintln!("unknown key: {message}");

    // No key at all: the zone's update-policy refuses.
    let provider = Rfc2136::new(&env.server, None).unwrap();
    let message = rt
        .block_on(provider.present(&name, "v"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("REFUSED"), "{message}");
    eprintln!("unsigned: {message}");

    // And nothing was written.
    let report = rt.block_on(env.checker().check(&name, "v")).unwrap();
    assert!(!report.all_visible(), "{}", report.summary());
}

#[test]
fn cname_delegation_is_followed_to_another_zone() {
    let env = env();
    let provider = env.provider();
    let checker = env.checker();
    let identifier = env.unique("cname", &env.zone);
    let challenge = challenge_name(&identifier);
    let target = env.unique("target", &env.zone2);
    let value = txt_value(&format!("token-c.{}", std::process::id()));
    let _cleanup = Cleanup {
        provider: provider.clone(),
        txt: vec![(target.clone(), value.clone())],
        cnames: vec![challenge.clone()],
    };
    let rt = rt();
    rt.block_on(async {
        // Without a CNAME the challenge name is itself.
        assert_eq!(
            checker.resolve_challenge_name(&challenge).await.unwrap(),
            challenge
        );
        provider
            .add_cname(&challenge, &format!("{target}."))
            .await
            .expect("add the CNAME");
        let resolved = checker
            .resolve_challenge_name(&challenge.to_uppercase())
            .await
            .expect("follow");
        assert_eq!(resolved, target);

        // The update goes to the target's zone, found by SOA at the nameserver.
        assert_eq!(provider.zone_for(&resolved).await.unwrap(), env.zone2);
        provider
            .present(&resolved, &value)
            .await
            .expect("present at the target");
        let report = checker.check(&resolved, &value).await.expect("check");
        assert!(report.all_visible(), "{}", report.summary());
        assert_eq!(report.zone.zone, env.zone2);
        assert_eq!(report.servers[0].server, format!("ns.{}", env.zone2));

        // Checking the CNAME itself says where to look instead.
        let at_cname = checker.check(&challenge, &value).await.expect("check");
        assert!(!at_cname.all_visible());
        assert!(
            at_cname.summary().contains(&format!("CNAME to {target}")),
            "{}",
            at_cname.summary()
        );

        provider
            .clean_up(&resolved, &value)
            .await
            .expect("clean up");
        let after = checker.check(&resolved, &value).await.expect("check");
        assert!(!after.all_visible(), "{}", after.summary());
    });
}

#[test]
fn zone_and_negative_caching_ttl() {
    let env = env();
    let checker = env.checker();
    let rt = rt();
    let name = challenge_name(&env.unique("soa", &env.zone));
    let info = rt.block_on(checker.zone_info(&name)).expect("zone");
    assert_eq!(info.zone, env.zone);
    assert_eq!(
        info.soa_minimum, 5,
        "the test zones use SOA minimum 5: {info:?}"
    );
    assert_eq!(info.negative_ttl, 5, "{info:?}");
    assert_eq!(info.primary, format!("ns.{}", env.zone));
    let info2 = rt.block_on(checker.zone_info(&env.zone2)).expect("zone 2");
    assert_eq!(info2.zone, env.zone2);

    let ns = rt
        .block_on(checker.authoritative_nameservers(&env.zone))
        .expect("NS");
    assert_eq!(ns.len(), 1, "{ns:?}");
    assert_eq!(ns[0].name, format!("ns.{}", env.zone));
    assert_eq!(ns[0].addresses, [env.server.parse().unwrap()]);

    // A zone the server does not serve.
    let err = rt
        .block_on(checker.zone_info("_acme-challenge.nowhere.invalid"))
        .unwrap_err();
    assert!(matches!(err, Dns01Error::ZoneNotFound { .. }), "{err}");
}

#[test]
fn split_horizon_checks_only_the_configured_nameservers() {
    let env = env();
    let provider = env.provider();
    let name = challenge_name(&env.unique("split", &env.zone));
    let value = txt_value("split");
    let _cleanup = Cleanup {
        provider: provider.clone(),
        txt: vec![(name.clone(), value.clone())],
        cnames: vec![],
    };
    let checker = PropagationChecker::new(PropagationConfig {
        nameservers: vec![env.server.clone()],
        timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .unwrap();
    let rt = rt();
    rt.block_on(async {
        provider.present(&name, &value).await.expect("present");
        let report = checker.check(&name, &value).await.expect("check");
        assert!(report.all_visible(), "{}", report.summary());
        assert_eq!(report.servers.len(), 1);
        assert_eq!(report.servers[0].server, env.server);
        assert_eq!(report.zone.soa_minimum, 5);
    });

    // An unreachable server is reported per server, quickly, not as an error of the round.
    let unreachable = PropagationChecker::new(PropagationConfig {
        resolvers: vec![env.server.clone()],
        nameservers: vec!["127.0.0.1:9".into()],
        timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .unwrap();
    let report = rt
        .block_on(unreachable.check(&name, &value))
        .expect("round");
    assert!(!report.all_visible());
    assert!(
        matches!(&report.servers[0].result, CheckResult::Failed(_)),
        "{report:?}"
    );
}
