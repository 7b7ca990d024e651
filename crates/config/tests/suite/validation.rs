//! Cross-reference validation after the merge: specific problems, each
//! with the layer that set its key.

use cadre_config::{Config, Error};
use pretty_assertions::assert_eq;

use super::support::*;

#[test]
fn validation_failures_are_specific_and_carry_their_source() {
    let p = problems_for(&["tiers.order=[\"haiku\", \"nope\"]"]);
    assert_eq!(p[0].key, "tiers.order");
    assert!(
        p[0].message.contains("\"nope\" has no [models.nope] entry"),
        "{p:?}"
    );
    assert_eq!(p[0].origin.as_deref(), Some("-c"));
    // Dropping opus from the order also orphans the roles and start tier that name it.
    assert!(
        p.iter()
            .any(|p| p.key == "roles.planner.tier" && p.origin.as_deref() == Some("default")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.key == "routing.start_tier.reasoning"),
        "{p:?}"
    );

    let p = problems_for(&["models.haiku.provider=nowhere"]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "models.haiku.provider");
    assert!(
        p[0].message.contains("provider \"nowhere\" does not exist"),
        "{p:?}"
    );

    let p = problems_for(&["models.haiku.input_usd_per_mtok=-1.0"]);
    assert_eq!(p[0].key, "models.haiku.input_usd_per_mtok");
    assert!(p[0].message.contains(">= 0"), "{p:?}");

    for bad in ["0", "1.5"] {
        let p = problems_for(&[&format!("models.sonnet.batch_discount={bad}")]);
        assert_eq!(p[0].key, "models.sonnet.batch_discount");
        assert!(p[0].message.contains("(0, 1]"), "{p:?}");
    }

    // Workers run on haiku, whose thinking takes a budget.
    let p = problems_for(&["roles.worker.thinking_budget_tokens=512"]);
    assert_eq!(p[0].key, "roles.worker.thinking_budget_tokens");
    assert!(p[0].message.contains(">= 1024"), "{p:?}");
    let p = problems_for(&["roles.worker.thinking_budget_tokens=64000"]);
    assert!(p[0].message.contains("leaves no room"), "{p:?}");
    // Thinking off: no budget needed.
    load_with(
        None,
        &[],
        &[
            "roles.worker.thinking=false",
            "roles.worker.thinking_budget_tokens=0",
        ],
    )
    .unwrap();

    let p = problems_for(&["routing.start_tier.mechanical=gpt"]);
    assert_eq!(p[0].key, "routing.start_tier.mechanical");
    assert!(p[0].message.contains("not in tiers.order"), "{p:?}");

    let p = problems_for(&["roles.reviewer.tier=gpt"]);
    assert_eq!(p[0].key, "roles.reviewer.tier");

    let p = problems_for(&["cascade.attempts.gpt=2"]);
    assert_eq!(p[0].key, "cascade.attempts.gpt");
    assert!(p[0].message.contains("no [models.gpt] entry"), "{p:?}");

    let p = problems_for(&["cascade.attempts.opus=0"]);
    assert_eq!(p[0].key, "cascade.attempts.opus");

    let p = problems_for(&["limits.per_tier_concurrency.gpt=2"]);
    assert_eq!(p[0].key, "limits.per_tier_concurrency.gpt");

    let p = problems_for(&["roles.planner.effort=extreme"]);
    assert_eq!(p[0].key, "roles.planner.effort");

    let p = problems_for(&["daemon.listen=localhost"]);
    assert_eq!(p[0].key, "daemon.listen");

    let p = problems_for(&["routing.high_error_cost_paths=[\"src/[oops\"]"]);
    assert_eq!(p[0].key, "routing.high_error_cost_paths");

    let p = problems_for(&["providers.openai.api_key_env=sk-live-123"]);
    assert_eq!(p[0].key, "providers.openai.api_key_env");
    assert!(!p[0].message.is_empty());

    // Display lists every problem.
    let err = load_with(
        None,
        &[],
        &["models.haiku.batch_discount=0", "budget.default_usd=-1"],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("invalid configuration: "), "{text}");
    assert!(
        text.contains("models.haiku.batch_discount: must be in (0, 1], got 0 (set in -c)"),
        "{text}"
    );
    assert!(text.contains("budget.default_usd"), "{text}");

    // validate() on a hand-built config: no origin.
    let mut config = Config::default_embedded().unwrap();
    config.tiers.order.clear();
    match config.validate() {
        Err(Error::Invalid { problems }) => {
            assert_eq!(problems[0].key, "tiers.order");
            assert_eq!(problems[0].origin, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(config.top_tier(), "");
}
