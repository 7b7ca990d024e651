//! Pricing from the model table (docs/architecture.md section 13): uncached input, cache
//! writes (5m 1.25x, 1h 2x), cache reads (0.1x), output (thinking included),
//! the batch discount and the long-context premium.

use cadre_config::ModelConfig;
use cadre_llm::types::Usage;

const PER_TOKEN: f64 = 1.0 / 1_000_000.0;

/// Prompt tokens of a call: uncached + written + read.
pub fn prompt_tokens(usage: &Usage) -> u64 {
    usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
}

fn long_context_multipliers(model: &ModelConfig, prompt: u64) -> (f64, f64) {
    if model.long_context_threshold_tokens > 0 && prompt > model.long_context_threshold_tokens {
        (
            model.long_context_input_multiplier,
            model.long_context_output_multiplier,
        )
    } else {
        (1.0, 1.0)
    }
}

/// The USD cost of one call's usage on `model`.
pub fn price_usage(model: &ModelConfig, usage: &Usage, batch: bool) -> f64 {
    let (in_mult, out_mult) = long_context_multipliers(model, prompt_tokens(usage));
    let (write_5m, write_1h) = match usage.cache_creation {
        Some(split) if split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens > 0 => (
            split.ephemeral_5m_input_tokens,
            split.ephemeral_1h_input_tokens,
        ),
        _ => (usage.cache_creation_input_tokens, 0),
    };
    let input = usage.input_tokens as f64 * model.input_usd_per_mtok
        + write_5m as f64 * model.cache_write_5m_usd_per_mtok
        + write_1h as f64 * model.cache_write_1h_usd_per_mtok
        + usage.cache_read_input_tokens as f64 * model.cache_read_usd_per_mtok;
    let output = usage.output_tokens as f64 * model.output_usd_per_mtok;
    let discount = if batch { model.batch_discount } else { 1.0 };
    (input * in_mult + output * out_mult) * PER_TOKEN * discount
}

/// What caching saved on this call: cache reads priced at full input minus
/// what they cost.
pub fn cache_savings(model: &ModelConfig, usage: &Usage, batch: bool) -> f64 {
    let (in_mult, _) = long_context_multipliers(model, prompt_tokens(usage));
    let discount = if batch { model.batch_discount } else { 1.0 };
    usage.cache_read_input_tokens as f64
        * (model.input_usd_per_mtok - model.cache_read_usd_per_mtok)
        * in_mult
        * PER_TOKEN
        * discount
}

/// The most a call can cost: every prompt token written to cache (the
/// dearer of input and 5m write) plus `max_tokens` of output.
pub fn worst_case_usd(model: &ModelConfig, prompt: u64, max_tokens: u64, batch: bool) -> f64 {
    let (in_mult, out_mult) = long_context_multipliers(model, prompt);
    let input_price = model
        .input_usd_per_mtok
        .max(model.cache_write_5m_usd_per_mtok);
    let discount = if batch { model.batch_discount } else { 1.0 };
    (prompt as f64 * input_price * in_mult
        + max_tokens as f64 * model.output_usd_per_mtok * out_mult)
        * PER_TOKEN
        * discount
}

/// Rough token estimate for text we have not sent yet (4 characters a token).
pub fn estimate_tokens(text: &str) -> u64 {
    tokens_for_chars(text.chars().count() as u64)
}

/// [`estimate_tokens`] of a text of `chars` characters.
pub fn tokens_for_chars(chars: u64) -> u64 {
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_llm::types::CacheCreation;

    fn model(name: &str) -> ModelConfig {
        let config = cadre_config::Config::default_embedded().unwrap();
        config.models[name].clone()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn prices_match_the_reference_table() {
        // Opus: 10K uncached input at $5 + 2K output at $25 = 0.05 + 0.05.
        let u = Usage {
            input_tokens: 10_000,
            output_tokens: 2_000,
            ..Usage::default()
        };
        assert!(close(price_usage(&model("opus"), &u, false), 0.10));
        // Sonnet: 100K cache read at $0.30 + 4K 5m write at $3.75 + 1K in at $3 + 500 out at $15.
        let u = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_creation_input_tokens: 4_000,
            cache_read_input_tokens: 100_000,
            cache_creation: None,
        };
        let expected = (100_000.0 * 0.30 + 4_000.0 * 3.75 + 1_000.0 * 3.0 + 500.0 * 15.0) / 1e6;
        assert!(close(price_usage(&model("sonnet"), &u, false), expected));
        // Batch halves it.
        assert!(close(
            price_usage(&model("sonnet"), &u, true),
            expected / 2.0
        ));
        // Haiku 1h write at $2.
        let u = Usage {
            cache_creation_input_tokens: 10_000,
            cache_creation: Some(CacheCreation {
                ephemeral_5m_input_tokens: 0,
                ephemeral_1h_input_tokens: 10_000,
            }),
            ..Usage::default()
        };
        assert!(close(price_usage(&model("haiku"), &u, false), 0.02));
    }

    #[test]
    fn long_context_premium_applies_above_threshold() {
        // Sonnet above 200K input: $6 input and $22.50 output.
        let u = Usage {
            input_tokens: 250_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        assert!(close(
            price_usage(&model("sonnet"), &u, false),
            (250_000.0 * 6.0 + 1_000.0 * 22.5) / 1e6
        ));
    }

    #[test]
    fn worst_case_bounds_any_outcome() {
        let m = model("haiku");
        let worst = worst_case_usd(&m, 5_000, 1_000, false);
        for (input, write, read, out) in [
            (5_000, 0, 0, 1_000),
            (0, 5_000, 0, 1_000),
            (1_000, 0, 4_000, 1_000),
        ] {
            let u = Usage {
                input_tokens: input,
                cache_creation_input_tokens: write,
                cache_read_input_tokens: read,
                output_tokens: out,
                cache_creation: None,
            };
            assert!(price_usage(&m, &u, false) <= worst + 1e-12);
        }
    }
}
