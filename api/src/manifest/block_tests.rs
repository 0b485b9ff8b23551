//! The block reader against the general parser: wherever it answers, the
//! value is the general parser's.

use std::path::Path;

use proptest::prelude::*;

use super::{block, documents, yaml_options};

/// The general parser's value of one document (`None`: empty, `Err`: invalid).
fn general(doc: &str) -> Result<Option<serde_json::Value>, String> {
    serde_saphyr::from_str_with_options::<Option<serde_json::Value>>(doc, yaml_options())
        .map(|v| v.filter(|v| !v.is_null()))
        .map_err(|e| e.to_string())
}

/// Asserts agreement on every document of `yaml`; returns how many the
/// block reader read.
fn agree(yaml: &str, origin: &str) -> usize {
    let mut read = 0;
    for (i, doc) in documents(yaml).into_iter().enumerate() {
        if let Some(v) = block::parse(doc) {
            assert_eq!(
                general(doc),
                Ok(Some(v)),
                "{origin} document {}: the readers differ on\n{doc}",
                i + 1
            );
            read += 1;
        }
    }
    read
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn agrees_with_the_general_parser_on_the_repository_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["crds/tests", "examples"] {
        yaml_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "found only {} manifests", files.len());
    let read: usize = files
        .iter()
        .map(|f| {
            agree(
                &std::fs::read_to_string(f).unwrap(),
                &f.display().to_string(),
            )
        })
        .sum();
    // Most fixtures are plain block YAML: the fast reader must take them.
    assert!(read > 100, "the block reader read only {read} documents");
}

/// Documents as generated for large tables (the bench's generator writes
/// these shapes): all read by the block reader.
#[test]
fn reads_generated_manifests() {
    let docs = [
        "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: rs-7\n  namespace: bench\n  labels:\n    bench.lvs-operator.io/group-10: \"0\"\nspec:\n  address: 10.128.0.7\n  port: 8080\n",
        "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata:\n  name: svc-3\n  namespace: bench\nspec:\n  address: 172.16.0.3\n  port: 80\n  protocol: TCP\n  scheduler: rr\n  forwarding: NAT\n  directors:\n    nodeSelector:\n      matchLabels:\n        lvs.lvs-operator.io/director: \"true\"\n  realServerSelector:\n    matchLabels:\n      bench.lvs-operator.io/group-10: \"3\"\n",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: bench\n  labels:\n    kubernetes.io/hostname: bench\n    lvs.lvs-operator.io/director: \"true\"\nstatus:\n  addresses:\n  - type: InternalIP\n    address: 10.0.0.2\n",
        "# a comment\n---\nkind: K\nlist:\n  - a\n  -   b\n  - name: x\n    weight: 0\n\n    empty:\n  - {}\n  - []\nquoted: 'single'\n",
    ];
    for d in docs {
        assert!(block::parse(d).is_some(), "declined:\n{d}");
        assert_eq!(agree(d, "generated"), 1);
    }
}

/// What the block reader leaves to the general parser.
#[test]
fn declines_what_it_does_not_model() {
    let docs = [
        "a: yes\n",
        "a: Yes\n",
        "a: 0755\n",
        "a: 1_000\n",
        "a: 1.5\n",
        "a: 1e3\n",
        "a: -1\n",
        "a: 10.0.0\n",
        "a: .inf\n",
        "a: b # comment\n",
        "a: &x b\n",
        "a: *x\n",
        "a: !!str 1\n",
        "a: [1, 2]\n",
        "a: {b: c}\n",
        "a: |\n  text\n",
        "a: \"esc\\\"aped\"\n",
        "a: 'it''s'\n",
        "a: plain\n  continued\n",
        "a: b\na: c\n",
        "\"a\": b\n",
        "a:\tb\n",
        "a: b\r\n",
        "- a\n",
        "a\n",
        "a: b: c\n",
        "a:\n  - x\n  y: z\n",
        "a:\n    b: 1\n  c: 2\n",
        "--- a: b\n",
        "a: 99999999999999999999\n",
        "a: fd00::1\n",
        "",
        "# only a comment\n",
    ];
    for d in docs {
        assert_eq!(block::parse(d), None, "read:\n{d}");
    }
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(&'static str),
    Map(Vec<(&'static str, Node)>),
    Seq(Vec<Node>),
}

/// Scalars the block reader reads, and tricky ones it must leave alone.
const SCALARS: [&str; 16] = [
    "a",
    "TCP",
    "rr",
    "10.0.0.1",
    "0",
    "7",
    "8080",
    "true",
    "false",
    "null",
    "\"quoted\"",
    "'single'",
    "\"\"",
    "[]",
    "{}",
    "x.y/z-w",
];
const TRICKY: [&str; 16] = [
    "0755", "1_000", "1.5", "~", "yes", "No", "on", "-1", "-0", "1e3", "a b", "a # c", ".inf",
    "12.34.56", "\"a: b\"", "Null",
];
const KEYS: [&str; 10] = [
    "a", "kind", "name", "lvs.io/x", "spec", "port", "k-8", "b.c", "y", "True",
];

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        12 => prop::sample::select(&SCALARS[..]),
        1 => prop::sample::select(&TRICKY[..]),
    ]
    .prop_map(Node::Scalar);
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner.clone()), 1..4)
                .prop_map(Node::Map),
            prop::collection::vec(inner, 1..4).prop_map(Node::Seq),
        ]
    })
}

/// Block YAML for `node` as the value under a key at `indent`;
/// `indentless`: sequences at their key's indentation.
fn render(node: &Node, indent: usize, indentless: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Node::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                render(v, indent + 2, indentless, out);
            }
        }
        Node::Seq(items) => {
            out.push('\n');
            let at = if indentless { indent - 2 } else { indent };
            let pad = " ".repeat(at);
            for item in items {
                match item {
                    Node::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                    Node::Map(entries) => {
                        for (i, (k, v)) in entries.iter().enumerate() {
                            let lead = if i == 0 { "- " } else { "  " };
                            out.push_str(&format!("{pad}{lead}{k}:"));
                            render(v, at + 4, indentless, out);
                        }
                    }
                    Node::Seq(_) => {
                        out.push_str(&format!("{pad}-"));
                        render(item, at + 2, false, out);
                    }
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn agrees_on_generated_block_documents(
        entries in prop::collection::vec((prop::sample::select(&KEYS[..]), node()), 1..5),
        indentless in any::<bool>(),
        marker in any::<bool>(),
    ) {
        let mut doc = String::from(if marker { "---\n" } else { "" });
        for (k, v) in &entries {
            doc.push_str(&format!("{k}:"));
            render(v, 2, indentless, &mut doc);
        }
        agree(&doc, "generated");
    }
}
