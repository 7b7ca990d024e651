# cadre recipes. The README's two commands work without `just`.

# Run the bundled demo against the simulated provider.
demo:
    cargo run --release -p cadre-cli -- demo

# Run the whole test suite (the README's test command).
test:
    cargo test --workspace

# The CI gate: formatting, lints, docs (broken intra-doc links fail), tests.
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
    cargo test --workspace --locked

# Benchmarks of the orchestrator against the in-process simulated provider
# (release build): fan-out efficiency, overhead, scale, cache, provider pressure.
# Extra arguments pass through, e.g. `just bench --json` or `just bench --only scale`.
bench *ARGS:
    cargo run --release -p cadre-bench -- {{ARGS}}

# Serve the simulated provider with the demo scenario.
sim scenario="examples/demo/scenario.toml" listen="127.0.0.1:0":
    cargo run -p cadre-cli -- sim serve --scenario {{scenario}} --listen {{listen}}
