//! Layer order and value parsing: defaults, user file, `CADRE_*` variables,
//! `-c` flags; how env and flag values are read; which variables are ignored.

use std::path::PathBuf;

use cadre_config::{Config, ConfigSources};
use pretty_assertions::assert_eq;

use super::support::*;

#[test]
fn precedence_is_default_then_file_then_env_then_flag() {
    let (_dir, path) = user_file("[limits]\nmax_concurrency = 8\nreview_rounds = 3\n");
    let file_label = path.display().to_string();
    let var = [("CADRE_LIMITS__MAX_CONCURRENCY", "4")];

    let only_default = load_with(None, &[], &[]).unwrap();
    assert_eq!(only_default.config.limits.max_concurrency, 16);
    assert_eq!(
        only_default.source_of("limits.max_concurrency"),
        Some("default")
    );

    let file = load_with(Some(&path), &[], &[]).unwrap();
    assert_eq!(file.config.limits.max_concurrency, 8);
    assert_eq!(
        file.source_of("limits.max_concurrency"),
        Some(file_label.as_str())
    );

    let env = load_with(Some(&path), &var, &[]).unwrap();
    assert_eq!(env.config.limits.max_concurrency, 4);
    assert_eq!(
        env.source_of("limits.max_concurrency"),
        Some("env CADRE_LIMITS__MAX_CONCURRENCY")
    );

    let flag = load_with(Some(&path), &var, &["limits.max_concurrency=2"]).unwrap();
    assert_eq!(flag.config.limits.max_concurrency, 2);
    assert_eq!(flag.source_of("limits.max_concurrency"), Some("-c"));
    // Untouched by env and -c: still the file's; untouched by all: default.
    assert_eq!(flag.config.limits.review_rounds, 3);
    assert_eq!(
        flag.source_of("limits.review_rounds"),
        Some(file_label.as_str())
    );
    assert_eq!(flag.source_of("limits.max_file_bytes"), Some("default"));

    // Among -c flags the last wins.
    let twice = load_with(
        None,
        &[],
        &["limits.max_concurrency=3", "limits.max_concurrency=5"],
    )
    .unwrap();
    assert_eq!(twice.config.limits.max_concurrency, 5);
}

#[test]
fn env_vars_apply_in_name_order_so_the_more_specific_wins() {
    let pairs = [
        ("CADRE_ROUTING__START_TIER__MECHANICAL", "sonnet"),
        (
            "CADRE_ROUTING__START_TIER",
            "{ mechanical = \"opus\", reasoning = \"sonnet\" }",
        ),
    ];
    let loaded = load_with(None, &pairs, &[]).unwrap();
    let start = &loaded.config.routing.start_tier;
    assert_eq!(start.mechanical, "sonnet");
    assert_eq!(start.reasoning, "sonnet");
    assert_eq!(start.generative, "sonnet"); // default
    assert_eq!(
        loaded.source_of("routing.start_tier.mechanical"),
        Some("env CADRE_ROUTING__START_TIER__MECHANICAL")
    );
    assert_eq!(
        loaded.source_of("routing.start_tier.reasoning"),
        Some("env CADRE_ROUTING__START_TIER")
    );
    assert_eq!(
        loaded.source_of("routing.start_tier.generative"),
        Some("default")
    );
}

#[test]
fn env_and_flag_values_parse_as_toml_else_string() {
    let loaded = load_with(
        None,
        &[
            ("CADRE_ROUTING__ADAPTIVE", "true"),
            (
                "CADRE_ROUTING__HIGH_ERROR_COST_PATHS",
                "[\"**/billing/**\", \"**/*.sql\"]",
            ),
            ("CADRE_MODELS__HAIKU__MODEL", "claude-haiku-next"),
            ("CADRE_MODELS__SONNET__MODEL", "4"),
            ("CADRE_BUDGET__DEFAULT_USD", "5"),
            ("CADRE_STORE__PATH", "2024-01-01"),
            ("PATH", "/usr/bin"),
        ],
        &[
            "daemon.allowed_roots=[\"/srv/a\"]",
            "models.opus.model=\"quoted-id\"",
            "daemon.listen = 0.0.0.0:9000",
        ],
    )
    .unwrap();
    let config = &loaded.config;
    assert!(config.routing.adaptive);
    assert_eq!(
        config.routing.high_error_cost_paths,
        ["**/billing/**", "**/*.sql"]
    );
    assert_eq!(config.models["haiku"].model, "claude-haiku-next");
    assert_eq!(
        config.models["sonnet"].model, "4",
        "string fields keep the raw text"
    );
    assert_eq!(
        config.budget.default_usd, 5.0,
        "integers are accepted for floats"
    );
    assert_eq!(config.store.path, "2024-01-01", "datetimes stay strings");
    assert_eq!(config.daemon.allowed_roots, ["/srv/a"]);
    assert_eq!(config.models["opus"].model, "quoted-id");
    assert_eq!(config.daemon.listen, "0.0.0.0:9000");
}

#[test]
fn reserved_and_foreign_env_vars_are_ignored() {
    let loaded = load_with(
        None,
        &[
            ("CADRE_CONFIG", "/nonexistent/only/read/by/from_vars.toml"),
            ("CADRE_TOKEN", "s3cret"),
            ("CADRE_SERVER", "http://127.0.0.1:7878"),
            ("CADRE_LOG", "debug"),
            ("CADRE_DB", "/tmp/x.db"),
            ("HOME", "/home/u"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(loaded.config, Config::default_embedded().unwrap());
    assert!(!loaded.render_show().contains("s3cret"));
}

#[test]
fn sources_from_vars_pick_up_cadre_config() {
    let vars = env(&[
        ("CADRE_CONFIG", "/etc/cadre.toml"),
        ("CADRE_LOG", "info"),
        ("HOME", "/home/u"),
    ]);
    let sources =
        ConfigSources::from_vars(None, vars.clone(), vec!["routing.adaptive=true".to_owned()]);
    assert_eq!(sources.user_file, Some(PathBuf::from("/etc/cadre.toml")));
    assert_eq!(sources.env.len(), 2, "only CADRE_* variables are kept");
    assert_eq!(sources.overrides, ["routing.adaptive=true"]);

    let sources = ConfigSources::from_vars(Some(PathBuf::from("/x.toml")), vars, Vec::new());
    assert_eq!(
        sources.user_file,
        Some(PathBuf::from("/x.toml")),
        "--config wins over CADRE_CONFIG"
    );

    let sources = ConfigSources::from_vars(None, env(&[("CADRE_CONFIG", "")]), Vec::new());
    assert_eq!(sources.user_file, None);

    // Reading the real environment never panics and keeps only CADRE_* names.
    let real = ConfigSources::from_process_env(None, Vec::new());
    assert!(real.env.iter().all(|(name, _)| name.starts_with("CADRE_")));
}
