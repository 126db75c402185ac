//! The committed `crds/*.yaml` must equal what the Rust types generate (`ferrocert crds --out-dir crds`
//! regenerates them).

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = ferrocert::crds::all();
    let mut committed: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    committed.sort();
    let mut expected: Vec<_> = generated.iter().map(|(f, _)| f.to_string()).collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "crds/ holds other files than the generated CRDs"
    );
    for (file, crd) in generated {
        let want = ferrocert::crds::to_yaml(&crd).expect("CRD serializes");
        let have = std::fs::read_to_string(dir.join(file)).expect("read committed CRD");
        assert!(
            have == want,
            "crds/{file} is out of date: run `cargo run -- crds --out-dir crds` and commit"
        );
    }
}
