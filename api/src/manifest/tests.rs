use super::*;

fn rs(name: &str, weight: i64) -> Manifest {
    let yaml = format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}}}\nspec: {{address: 10.0.0.1, weight: {weight}}}\n"
    );
    parse(&yaml).unwrap().remove(0)
}

/// Many documents of every kind, with comments (some multi-byte),
/// empty documents and explicit document ends.
fn mixed_manifests(n: usize) -> String {
    let mut t = String::from("# généré\n");
    for i in 0..n {
        match i % 4 {
            0 => t.push_str(&format!(
                "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs-{i}, namespace: ns}}\nspec:\n  address: 10.1.{}.{}\n  port: 80\n  protocol: TCP\n  directors: {{nodeSelector: {{matchLabels: {{director: \"true\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: a{i}}}}}\n",
                i / 250,
                i % 250
            )),
            1 => t.push_str(&format!(
                "--- # rs ünïcode\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: rs-{i}\n  labels: {{app: a{}}}\nspec: {{address: 10.2.0.{}, weight: {}}}\n...\n",
                i - 1,
                i % 250,
                i % 7
            )),
            2 => t.push_str("---\n# nothing but a comment\n"),
            _ => t.push_str(&format!(
                "---\napiVersion: v1\nkind: Node\nmetadata: {{name: node-{i}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.3.0.{}}}]}}\n",
                i % 250
            )),
        }
    }
    t
}

#[test]
fn documents_cut_at_markers_rejoin_to_the_input() {
    let t = mixed_manifests(40);
    for parts in 1..8 {
        let pieces = split_documents(&t, parts);
        assert!(
            pieces.len() <= parts.max(1),
            "{parts}: {} pieces",
            pieces.len()
        );
        assert_eq!(pieces.concat(), t, "{parts} parts");
        for p in &pieces[1..] {
            assert!(p.starts_with("---"), "piece starts mid-document: {p:?}");
        }
    }
    assert!(split_documents(&t, 4).len() > 1, "a long input is cut");
    let directive = format!("%YAML 1.2\n{t}");
    assert_eq!(split_documents(&directive, 4), vec![directive.as_str()]);
}

#[test]
fn parsing_in_parts_gives_what_parsing_at_once_gives() {
    let t = mixed_manifests(103);
    let whole = parse_serial(&t).unwrap();
    assert_eq!(
        whole.len(),
        77,
        "26 VirtualServices, 26 RealServers, 25 Nodes"
    );
    for parts in 2..7 {
        assert_eq!(parse_in_parts(&t, parts).unwrap(), whole, "{parts} parts");
    }
}

#[test]
fn an_error_in_a_later_part_names_the_same_document() {
    let mut t = mixed_manifests(60);
    t.push_str("---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {name: bad}\nspec: {address: 10.9.9.9, weight: many}\n");
    t.push_str(&mixed_manifests(8));
    let serial = parse_serial(&t).unwrap_err().to_string();
    assert!(serial.contains("spec.weight"), "{serial}");
    for parts in 2..6 {
        assert_eq!(parse_in_parts(&t, parts).unwrap_err().to_string(), serial);
    }
}

#[test]
fn later_objects_replace_earlier_ones_with_the_same_key() {
    let mut set = ManifestSet::default();
    set.extend(vec![rs("a", 1), rs("b", 1)]);
    set.extend(vec![rs("a", 7)]);
    let weights: Vec<(String, i64)> = set
        .real_servers
        .iter()
        .map(|o| (o.meta.name.clone(), o.spec.weight))
        .collect();
    assert_eq!(weights, vec![("a".to_string(), 7), ("b".to_string(), 1)]);
    // a list changed from outside is reindexed, not duplicated
    set.real_servers.remove(0);
    set.extend(vec![rs("b", 3), rs("a", 2)]);
    let weights: Vec<(String, i64)> = set
        .real_servers
        .iter()
        .map(|o| (o.meta.name.clone(), o.spec.weight))
        .collect();
    assert_eq!(weights, vec![("b".to_string(), 3), ("a".to_string(), 2)]);
}
