//! The controller accepts exactly the flags the rendered Deployment passes it: a renamed flag would
//! otherwise only show up as a crash-looping pod.

#[test]
fn the_deployment_args_parse() {
    let manifests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/ferrocert.yaml"
    ))
    .expect("deploy/ferrocert.yaml");
    let deployment = serde_yaml::Deserializer::from_str(&manifests)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("YAML document"))
        .find(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("Deployment"))
        .expect("a Deployment in deploy/ferrocert.yaml");
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("controller"));
    // A missing kubeconfig fails after argument parsing; a bad flag fails in clap with exit code 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocert"))
        .args(&args)
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("run ferrocert");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(2),
        "clap refused the Deployment's args: {stderr}"
    );
    assert!(
        stderr.contains("kubeconfig"),
        "expected the kubeconfig error, got: {stderr}"
    );
}

use serde::Deserialize;
