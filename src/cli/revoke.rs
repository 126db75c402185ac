//! `ferrocert revoke CERT [--reason R]`: asks the controller to revoke a Certificate's current
//! certificate at the CA and issue a new one.
//!
//! Revocation needs the issuer's ACME account key, which only the controller holds, so the CLI
//! sets two annotations (`ferrocert.dev/revoke-requested` with a new unique id and
//! `ferrocert.dev/revoke-reason`) and the controller answers the request once, recording it in
//! `status.revocation`. With `keyCompromise` the next key is always new, even with
//! `rotationPolicy: Never`. `--wait` follows the Certificate until it is re-issued and Ready.

use jiff::Timestamp;
use kube::api::Api;
use serde_json::json;

use super::renew::{WaitArgs, annotate, parse_timeout, request_id, revision, wait_reissued};
use super::{CliError, KubeArgs, connect, print};
use crate::acme::lifecycle::RevokeReason;
use crate::api::Certificate;
use crate::labels::{ANN_REVOKE_REASON, ANN_REVOKE_REQUESTED};

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// Name of the Certificate.
    pub certificate: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The RFC 5280 revocation reason.
    #[arg(long, value_enum, default_value_t = RevokeReason::Unspecified)]
    pub reason: RevokeReason,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(args: RevokeArgs) -> Result<(), CliError> {
    parse_timeout(&args.wait.timeout)?;
    let (client, namespace) = connect(&args.kube).await?;
    let name = &args.certificate;
    let api = Api::<Certificate>::namespaced(client.clone(), &namespace);
    let cert = api
        .get(name)
        .await
        .map_err(|e| CliError::from_kube("Certificate", &namespace, name, e))?;
    let revision_before = revision(&cert);
    let request = request_id(Timestamp::now());
    annotate(
        &api,
        &namespace,
        name,
        json!({
            ANN_REVOKE_REQUESTED: request,
            ANN_REVOKE_REASON: args.reason.as_str(),
        }),
    )
    .await?;
    print(&requested_message(
        &namespace,
        name,
        &request,
        args.reason,
        revision_before,
    ))?;
    if !args.wait.wait {
        return Ok(());
    }
    wait_reissued(
        client,
        &namespace,
        name,
        revision_before,
        &args.wait.timeout,
    )
    .await
}

/// What the command did, in words.
pub fn requested_message(
    namespace: &str,
    name: &str,
    request: &str,
    reason: RevokeReason,
    revision: i64,
) -> String {
    format!(
        "Revocation of Certificate {namespace}/{name} (revision {revision}) requested with reason {} (request {request}).\n\
         The controller revokes the current certificate, then issues a new one; see `ferrocert status {name} -n {namespace}`.\n",
        reason.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_reason_and_the_follow_up() {
        let m = requested_message("ns", "web", "r1", RevokeReason::KeyCompromise, 3);
        assert!(m.contains("Certificate ns/web (revision 3)"), "{m}");
        assert!(m.contains("reason keyCompromise (request r1)"), "{m}");
        assert!(m.contains("ferrocert status web -n ns"), "{m}");
    }

    #[test]
    fn reasons_parse_from_the_command_line() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            args: RevokeArgs,
        }
        let t = T::try_parse_from(["t", "web", "--reason", "keyCompromise"]).unwrap();
        assert_eq!(t.args.reason, RevokeReason::KeyCompromise);
        let t = T::try_parse_from(["t", "web"]).unwrap();
        assert_eq!(t.args.reason, RevokeReason::Unspecified);
        assert!(T::try_parse_from(["t", "web", "--reason", "caCompromise"]).is_err());
    }
}
