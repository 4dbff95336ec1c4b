//! The checked-in spec matches the code.

#[test]
fn the_checked_in_spec_is_current() {
    let generated = videdit_server::openapi_spec();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/videdit.json");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "openapi/videdit.json is out of date: run `cargo run -p videdit-server -- openapi` and commit it"
    );
}

#[test]
fn every_operation_is_documented() {
    let spec: serde_json::Value = serde_json::from_str(&videdit_server::openapi_spec()).unwrap();
    let mut ids = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            ids.push(op["operationId"].as_str().unwrap_or_default().to_owned());
            for field in ["summary", "description", "operationId"] {
                assert!(op[field].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no {field}");
            }
        }
    }
    // Every operation is in the role-matrix test, and nothing else is.
    let mut matrix: Vec<String> = crate::roles::OPERATIONS.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    matrix.sort();
    assert_eq!(ids, matrix, "add new operations to tests/api/roles.rs");
}
