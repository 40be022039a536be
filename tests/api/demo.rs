//! The README's first command must pass on every run: its scenario, several times over.

#[path = "../../examples/demo/scenario.rs"]
mod scenario;

#[tokio::test]
async fn the_demo_passes_every_time() {
    for run in 1..=5 {
        let outcomes = scenario::demo()
            .await
            .unwrap_or_else(|e| panic!("run {run}: {e:#}"));
        assert_eq!(
            outcomes,
            ["invited", "already_invited", "invited"],
            "run {run}"
        );
    }
}
