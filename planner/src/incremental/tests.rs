use super::*;
use crate::analyze::ServiceState;
use lvs_api::manifest::{ManifestSet, parse};

/// A director, 60 VirtualServices (three pairs contending for a key)
/// and 90 RealServers, some selected by several services.
fn world() -> ManifestSet {
    let mut y = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: dir1, labels: {director: \"true\"}}\nstatus: {addresses: [{type: InternalIP, address: 10.10.0.2}]}\n",
    );
    for i in 0..60 {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs{i}, namespace: default}}\nspec:\n  address: 172.16.0.{}\n  port: 80\n  protocol: TCP\n  directors: {{nodeSelector: {{matchLabels: {{director: \"true\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: a{}}}}}\n",
            if i < 6 { i / 2 } else { i },
            i % 9
        );
    }
    for r in 0..90 {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: r{r}, namespace: default, labels: {{app: a{}}}}}\nspec: {{address: 10.1.0.{}, port: 8080, weight: {}}}\n",
            r % 9,
            r + 1,
            r % 4
        );
    }
    let mut s = ManifestSet::default();
    s.extend(parse(&y).unwrap());
    s
}

#[test]
fn threads_plan_what_one_thread_plans() {
    let w = world();
    let run = |parallel_min: usize| {
        let mut inc = Incremental {
            parallel_min,
            ..Incremental::new("dir1")
        };
        let a = inc.apply(inc.diff(
            w.virtual_services.clone(),
            w.real_servers.clone(),
            w.nodes.clone(),
        ));
        (a.all, a.verdicts, a.scope, inc.plan())
    };
    let one = run(usize::MAX);
    let many = run(1);
    assert!(one.0, "the first load re-plans everything");
    assert_eq!(one.1.len(), 60);
    assert!(
        one.1
            .iter()
            .any(|(_, v)| matches!(v.as_ref().unwrap().state, ServiceState::Conflict { .. })),
        "the world has conflicts"
    );
    assert_eq!(one.3.services.len(), 57, "60 services, 3 lose a conflict");
    assert_eq!(many, one);
}
