//! The shipped files: the embedded defaults, `config/default.toml` and
//! `config/example.toml` load through the loader; store path defaults.

use std::path::PathBuf;

use cadre_config::{Config, ConfigSources, ThinkingMode, default_store_path, load};
use pretty_assertions::assert_eq;

use super::support::*;

#[test]
fn defaults_load_validate_and_helpers_work() {
    let config = Config::default_embedded().unwrap();
    assert_eq!(config.tiers.order, ["codemod", "haiku", "sonnet", "opus"]);
    assert_eq!(config.model_tiers(), ["haiku", "sonnet", "opus"]);
    assert_eq!(config.tier_index("haiku"), Some(0));
    assert_eq!(config.tier_index("opus"), Some(2));
    assert_eq!(config.tier_index("gpt"), None);
    assert_eq!(config.top_tier(), "opus");
    assert_eq!(config.next_tier("haiku"), Some("sonnet"));
    assert_eq!(config.next_tier("opus"), None);
    assert_eq!(config.next_tier("gpt"), None);
    assert_eq!(
        config.model_for_tier("sonnet").unwrap().model,
        "claude-sonnet-4-6"
    );
    assert!(config.model_for_tier("gpt").is_none());
    assert_eq!(
        config.provider_for_tier("haiku").unwrap().api_key_env,
        "ANTHROPIC_API_KEY"
    );
    assert_eq!(config.attempts_for_tier("haiku"), 1);
    assert_eq!(config.attempts_for_tier("sonnet"), 2);
    assert_eq!(config.attempts_for_tier("unlisted"), 1);
    assert_eq!(config.concurrency_for_tier("opus"), 4);
    assert_eq!(config.concurrency_for_tier("unlisted"), 16);
    assert_eq!(config.models["haiku"].thinking, ThinkingMode::Budget);
    // The default layer alone attributes everything to "default".
    let loaded = load(&ConfigSources::default()).unwrap();
    assert!(loaded.sources.values().all(|s| s == "default"));
    assert_eq!(loaded.config, config);
}

#[test]
fn default_and_example_files_parse_through_the_loader() {
    // default.toml as a user file on top of itself: every key must be known.
    let default_path = repo_file("config/default.toml");
    let loaded = load_with(Some(&default_path), &[], &[]).unwrap();
    assert_eq!(loaded.config, Config::default_embedded().unwrap());

    let example = repo_file("config/example.toml");
    let loaded = load_with(Some(&example), &[], &[]).unwrap();
    let config = &loaded.config;
    assert_eq!(config.tiers.order, ["codemod", "local", "sonnet", "opus"]);
    assert!(config.has_codemod_tier());
    let local = config.model_for_tier("local").unwrap();
    assert_eq!(local.provider, "openai");
    assert_eq!(local.thinking, ThinkingMode::None);
    assert_eq!(config.routing.start_tier.mechanical, "local");
    assert_eq!(config.routing.start_tier.generative, "sonnet");
    assert_eq!(config.attempts_for_tier("local"), 2);
    assert_eq!(config.providers["openai"].timeout_secs, 900);
    let example_label = example.display().to_string();
    assert_eq!(
        loaded.source_of("models.local.model"),
        Some(example_label.as_str())
    );
    assert_eq!(
        loaded.source_of("routing.start_tier.generative"),
        Some("default")
    );
    assert_eq!(loaded.source_of("providers.openai.kind"), Some("default"));
}

#[test]
fn store_path_defaults_follow_xdg() {
    assert_eq!(
        default_store_path(Some("/home/u"), Some("/data")),
        PathBuf::from("/data/cadre/cadre.db")
    );
    assert_eq!(
        default_store_path(Some("/home/u"), Some("relative")),
        PathBuf::from("/home/u/.local/share/cadre/cadre.db"),
        "a relative XDG_DATA_HOME is ignored"
    );
    assert_eq!(
        default_store_path(Some("/home/u"), None),
        PathBuf::from("/home/u/.local/share/cadre/cadre.db")
    );
    assert_eq!(default_store_path(None, None), PathBuf::from("cadre.db"));

    let mut store = Config::default_embedded().unwrap().store;
    assert_eq!(
        store.resolve_path(Some("/home/u"), None),
        PathBuf::from("/home/u/.local/share/cadre/cadre.db")
    );
    store.path = "~/jobs/cadre.db".to_owned();
    assert_eq!(
        store.resolve_path(Some("/home/u"), None),
        PathBuf::from("/home/u/jobs/cadre.db")
    );
    store.path = "/var/lib/cadre.db".to_owned();
    assert_eq!(
        store.resolve_path(Some("/home/u"), Some("/data")),
        PathBuf::from("/var/lib/cadre.db")
    );
    let mut config = Config::default_embedded().unwrap();
    assert_eq!(
        config.checkouts_dir(Some("/home/u"), None),
        PathBuf::from("/home/u/.local/share/cadre/checkouts")
    );
    config.store.path = "/var/lib/cadre.db".to_owned();
    assert_eq!(
        config.checkouts_dir(Some("/home/u"), None),
        PathBuf::from("/var/lib/checkouts")
    );
    config.daemon.checkouts_dir = "~/clones".to_owned();
    assert_eq!(
        config.checkouts_dir(Some("/home/u"), None),
        PathBuf::from("/home/u/clones")
    );
}
