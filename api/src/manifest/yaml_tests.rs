use super::*;

const RS: &str = "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {name: a}\nspec: {address: 10.0.0.1, weight: 1}\n";

fn err(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

#[test]
fn plain_scalars_follow_the_yaml_1_2_core_schema() {
    let yaml = "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {a: yes, b: on, c: \"true\", d: 0755, e: 1_000, f: No}}\n";
    let Manifest::Node(node) = parse(yaml).unwrap().remove(0) else {
        panic!("not a Node")
    };
    let labels: Vec<(&str, &str)> = node
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("a", "yes"),
            ("b", "on"),
            ("c", "true"),
            ("d", "0755"),
            ("e", "1_000"),
            ("f", "No")
        ]
    );
    // An unquoted `true` is a boolean, which a label value cannot be.
    let yaml = "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {director: true}}\n";
    assert_eq!(
        err(yaml),
        "document 1: metadata.labels.director: invalid type: boolean `true`, expected a string"
    );
}

#[test]
fn documents_are_numbered_as_a_yaml_parser_numbers_them() {
    // A comment before the first marker is no document; a bare document
    // may follow `...`; a directive belongs to the document after it.
    let bad = "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {name: b}\nspec: {address: 10.0.0.2, weight: x}\n";
    let yaml = format!("# head\n---\n{RS}...\n{RS}---\n# empty\n...\n%YAML 1.2\n---\n{bad}");
    assert_eq!(documents(&yaml).len(), 4, "{:#?}", documents(&yaml));
    assert_eq!(
        err(&yaml),
        "document 4: spec.weight: invalid type: string \"x\", expected i64"
    );
    assert!(documents("").is_empty());
    assert!(documents("# only a comment\n").is_empty());
    assert_eq!(parse("---\n---\n").unwrap(), []);
}

#[test]
fn a_syntax_error_names_its_document_and_its_line_in_the_whole_input() {
    let yaml = format!("# head\n---\n{RS}---\n# empty\n---\nmetadata: {{name: [\n");
    assert_eq!(
        err(&yaml),
        "document 3: not valid YAML: unclosed bracket '[' at line 10, column 18"
    );
    assert_eq!(
        err(&format!("{RS}---\na: &x 1\nb: *y\n")),
        "document 2: not valid YAML: alias references unknown anchor at line 7, column 4"
    );
}

#[test]
fn an_undeclared_field_is_named_once() {
    let yaml = "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {name: a}\nspec: {address: 10.0.0.1, wait: 1}\n";
    assert_eq!(
        err(yaml),
        "document 1: spec.wait: field not declared in schema"
    );
}

#[test]
fn a_null_spec_is_a_missing_spec() {
    let yaml =
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: a\nspec:\n";
    assert_eq!(err(yaml), "document 1: spec: Required value");
    let yaml = "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: a\nspec:\n  address: 10.0.0.1\n  port: x\n";
    assert!(err(yaml).contains("spec.port"), "{}", err(yaml));
}
