//! `cadre config show`: every leaf with its source, secrets redacted.

use cadre_config::{ConfigSources, load};
use pretty_assertions::assert_eq;

use super::support::*;

#[test]
fn render_show_lists_every_leaf_with_its_source() {
    let (_dir, path) = user_file("[daemon]\nmax_jobs = 2\n");
    let loaded = load_with(
        Some(&path),
        &[("CADRE_LIMITS__MAX_CONCURRENCY", "4")],
        &["routing.adaptive=true"],
    )
    .unwrap();
    let shown = loaded.render_show();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines.contains(&"limits.max_concurrency = 4  # env CADRE_LIMITS__MAX_CONCURRENCY"),
        "{shown}"
    );
    assert!(lines.contains(&"routing.adaptive = true  # -c"), "{shown}");
    assert!(
        lines.contains(&format!("daemon.max_jobs = 2  # {}", path.display()).as_str()),
        "{shown}"
    );
    assert!(
        lines.contains(&"providers.anthropic.api_key_env = \"ANTHROPIC_API_KEY\"  # default"),
        "{shown}"
    );
    assert!(
        lines.contains(&"models.haiku.input_usd_per_mtok = 1.0  # default"),
        "{shown}"
    );
    assert!(
        lines.contains(&"roles.planner.max_tokens = 20000  # default"),
        "counts are not secrets: {shown}"
    );
    assert!(
        lines.contains(&"roles.planner.thinking_for_mechanical = false  # default"),
        "{shown}"
    );
    assert!(
        lines.contains(&"tiers.order = [\"codemod\", \"haiku\", \"sonnet\", \"opus\"]  # default"),
        "{shown}"
    );
    // Sorted, one line per provenance entry, every line annotated.
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), loaded.sources.len());
    assert!(lines.iter().all(|l| l.contains("  # ")));
}

#[test]
fn render_show_redacts_secret_looking_values() {
    let mut loaded = load(&ConfigSources::default()).unwrap();
    let provider = loaded.config.providers.get_mut("anthropic").unwrap();
    provider.api_key_env = "sk-ant-api03-verysecret".to_owned();
    let shown = loaded.render_show();
    assert!(!shown.contains("verysecret"), "{shown}");
    assert!(
        shown.contains("providers.anthropic.api_key_env = \"<redacted>\"  # default"),
        "{shown}"
    );
    assert!(
        shown.contains("providers.openai.api_key_env = \"OPENAI_API_KEY\""),
        "{shown}"
    );
}
