//! Loader behaviour: layering, strictness, provenance, validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cadre_config::{
    Config, ConfigSources, Error, LoadedConfig, Problem, ThinkingMode, default_store_path, load,
};
use pretty_assertions::assert_eq;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn overrides(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A user file in a temp dir; the dir lives as long as the returned guard.
fn user_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_with(
    file: Option<&Path>,
    env_pairs: &[(&str, &str)],
    over: &[&str],
) -> cadre_config::Result<LoadedConfig> {
    load(&ConfigSources {
        user_file: file.map(Path::to_path_buf),
        env: env(env_pairs),
        overrides: overrides(over),
    })
}

fn problems_for(over: &[&str]) -> Vec<Problem> {
    match load_with(None, &[], over) {
        Err(Error::Invalid { problems }) => problems,
        other => panic!("expected validation failure for {over:?}, got {other:?}"),
    }
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn defaults_load_validate_and_helpers_work() {
    let config = Config::default_embedded().unwrap();
    assert_eq!(config.tiers.order, ["haiku", "sonnet", "opus"]);
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
    assert_eq!(config.tiers.order, ["local", "sonnet", "opus"]);
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
fn unknown_key_in_file_names_key_and_file() {
    let (_dir, path) = user_file("[limits]\nmax_concurency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown config key \"limits.max_concurency\" in {}",
            path.display()
        )
    );
    assert!(matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurency"));

    let (_dir, path) = user_file("[limitz]\nmax_concurrency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limitz"),
        "{err}"
    );

    // Inside a free-key map the entry's fields are still checked.
    let (_dir, path) = user_file("[models.haiku]\nmodle = \"x\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown config key \"models.haiku.modle\" in {}",
            path.display()
        )
    );

    // Inline tables too.
    let (_dir, path) =
        user_file("[routing]\nstart_tier = { mechanical = \"haiku\", creative = \"opus\" }\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "routing.start_tier.creative"),
        "{err}"
    );
}

#[test]
fn unknown_env_key_names_the_variable() {
    let err = load_with(None, &[("CADRE_LIMITS__MAX_CONCURENCY", "4")], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key \"limits.max_concurency\" in env CADRE_LIMITS__MAX_CONCURENCY"
    );
    let err = load_with(None, &[("CADRE_VERBOSE", "1")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, origin } if key == "verbose" && origin == "env CADRE_VERBOSE")
    );
    // A path below a leaf is unknown too.
    let err = load_with(None, &[("CADRE_LIMITS__MAX_CONCURRENCY__X", "4")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurrency.x"),
        "{err}"
    );
    // Malformed names.
    let err = load_with(None, &[("CADRE_LIMITS__", "4")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::BadOverride { origin, .. } if origin == "env CADRE_LIMITS__"),
        "{err}"
    );
}

#[test]
fn unknown_and_malformed_flags_are_errors() {
    let err = load_with(None, &[], &["limits.max_concurency=4"]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurency"),
        "{err}"
    );
    assert!(
        err.to_string().contains("-c \"limits.max_concurency=4\""),
        "{err}"
    );
    let err = load_with(None, &[], &["limits.max_concurrency"]).unwrap_err();
    assert!(matches!(err, Error::BadOverride { .. }), "{err}");
    let err = load_with(None, &[], &["limits..max_concurrency=1"]).unwrap_err();
    assert!(matches!(err, Error::BadOverride { .. }), "{err}");
}

#[test]
fn type_errors_name_key_and_source() {
    let (_dir, path) = user_file("[limits]\nmax_concurrency = \"lots\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "limits.max_concurrency");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("expected an integer"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let err = load_with(None, &[("CADRE_ROUTING__ADAPTIVE", "yes")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, origin, .. }
            if key == "routing.adaptive" && origin == "env CADRE_ROUTING__ADAPTIVE"),
        "{err}"
    );

    let err = load_with(None, &[], &["tiers.order=haiku"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, message, .. } if key == "tiers.order" && message.contains("expected an array")),
        "{err}"
    );

    // Range errors come from serde and are mapped back to the key and layer.
    let err = load_with(None, &[], &["limits.max_concurrency=-1"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, origin, message }
            if key == "limits.max_concurrency" && origin == "-c" && message.contains("u32")),
        "{err}"
    );

    // Bad enum variant in a file.
    let (_dir, path) = user_file("[models.haiku]\nthinking = \"sometimes\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "models.haiku.thinking");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("unknown variant"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn new_model_from_file_must_be_complete() {
    let complete = std::fs::read_to_string(repo_file("config/default.toml"))
        .unwrap()
        .split("[models.haiku]")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .to_owned();
    let text = format!(
        "[tiers]\norder = [\"mini\", \"sonnet\", \"opus\"]\n[routing]\nstart_tier = {{ mechanical = \"mini\" }}\n[models.mini]{}\n",
        complete.replace("claude-haiku-4-5", "claude-mini")
    );
    let (_dir, path) = user_file(&text);
    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    assert_eq!(loaded.config.models["mini"].model, "claude-mini");
    assert_eq!(loaded.config.next_tier("mini"), Some("sonnet"));
    assert_eq!(
        loaded.source_of("models.mini.context_window"),
        Some(path.display().to_string().as_str())
    );

    let (_dir, path) =
        user_file("[models.mini]\nprovider = \"anthropic\"\nmodel = \"claude-mini\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "models.mini");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("missing field"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A new per-tier entry from -c is fine (free-key map of integers).
    let loaded = load_with(
        None,
        &[],
        &[
            "cascade.attempts.sonnet=3",
            "limits.per_tier_concurrency.haiku=2",
        ],
    )
    .unwrap();
    assert_eq!(loaded.config.attempts_for_tier("sonnet"), 3);
    assert_eq!(loaded.config.concurrency_for_tier("haiku"), 2);
}

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
        lines.contains(&"tiers.order = [\"haiku\", \"sonnet\", \"opus\"]  # default"),
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

#[test]
fn user_file_errors_name_the_file() {
    let missing = Path::new("/nonexistent/cadre/config.toml");
    let err = load_with(Some(missing), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::ReadFile { path, .. } if path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/cadre/config.toml"));

    let (_dir, path) = user_file("[limits\nmax_concurrency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Parse { origin, .. } if origin == &path.display().to_string()),
        "{err}"
    );
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
}
