//! The controller's ambient AWS credentials, for a Route53 solver that names no static keys.
//!
//! Supported, in this order (the order of the AWS SDKs' default chain):
//! 1. the environment: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`);
//! 2. the shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`,
//!    section `AWS_PROFILE` (default `default`), keys `aws_access_key_id`,
//!    `aws_secret_access_key`, `aws_session_token`;
//! 3. web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged at STS
//!    ([`super::sts`]).
//!
//! Not supported (each needs the instance or container metadata service): EKS Pod Identity, ECS
//! and EC2 instance roles, and `credential_process`. The error says what was looked for, so that
//! a person knows to give static keys instead.
//!
//! Credentials are read at each use (each reconcile that writes or removes a record), so a
//! rotated file is picked up without a restart.

use std::path::PathBuf;

use super::Dns01Error;

pub use super::route53::AwsCredentials;

/// The ambient credentials of the process (see the module docs for the sources).
pub async fn ambient() -> Result<AwsCredentials, Dns01Error> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(c) = from_env(env) {
        return Ok(c);
    }
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
    let path = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws").join("credentials")));
    let mut file_problem = String::new();
    if let Some(path) = &path
        && let Ok(text) = std::fs::read_to_string(path)
    {
        match from_shared_file(&text, &profile) {
            Some(c) => return Ok(c),
            None => {
                file_problem = format!(
                    "; the shared credentials file {} has no complete profile {profile:?}",
                    path.display()
                )
            }
        }
    }
    if let (Some(token_file), Some(role)) =
        (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
    {
        let token = std::fs::read_to_string(&token_file).map_err(|e| {
            Dns01Error::Config(format!(
                "Route53: reading the web identity token {token_file} (AWS_WEB_IDENTITY_TOKEN_FILE): {e}"
            ))
        })?;
        return super::sts::Sts::from_env()?
            .assume_role_with_web_identity(&role, &token)
            .await;
    }
    Err(Dns01Error::Config(format!(
        "Route53: no AWS credentials: the solver sets no accessKeyID/secretAccessKeySecretRef, \
         and the controller has neither AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, nor a shared \
         credentials file, nor AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN{file_problem}"
    )))
}

/// Credentials from environment variables (read through `get`), when both keys are set.
pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<AwsCredentials> {
    let non_empty = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Some(AwsCredentials {
        access_key_id: non_empty("AWS_ACCESS_KEY_ID")?,
        secret_access_key: non_empty("AWS_SECRET_ACCESS_KEY")?,
        session_token: non_empty("AWS_SESSION_TOKEN"),
    })
}

/// Credentials of `profile` in the text of a shared credentials file (INI: `[profile]` sections
/// of `key = value` lines, `#`/`;` comments).
pub fn from_shared_file(text: &str, profile: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_needs_both_keys() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            from_env(vars(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "t"),
            ])),
            Some(AwsCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
            })
        );
        assert_eq!(from_env(vars(&[("AWS_ACCESS_KEY_ID", "AKID")])), None);
        assert_eq!(
            from_env(vars(&[
                ("AWS_ACCESS_KEY_ID", " "),
                ("AWS_SECRET_ACCESS_KEY", "s")
            ])),
            None
        );
    }

    #[test]
    fn shared_file_profiles() {
        let text = "# comment\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key=sdef\n\n\
                    [ci]\n; another comment\naws_access_key_id=AKCI\naws_secret_access_key = sci\n\
                    aws_session_token = tci\nregion = eu-west-1\n[broken]\naws_access_key_id=x\n";
        let def = from_shared_file(text, "default").unwrap();
        assert_eq!(
            (def.access_key_id.as_str(), def.secret_access_key.as_str()),
            ("AKDEF", "sdef")
        );
        assert_eq!(def.session_token, None);
        let ci = from_shared_file(text, "ci").unwrap();
        assert_eq!(ci.session_token.as_deref(), Some("tci"));
        assert_eq!(from_shared_file(text, "broken"), None);
        assert_eq!(from_shared_file(text, "missing"), None);
        assert!(!format!("{ci:?}").contains("sci"));
    }
}
