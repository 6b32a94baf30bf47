//! The model price table (`config/model-prices.yaml`, built in; or
//! `MODEL_PRICES_FILE`): what a model call costs from the usage the model
//! reported, in integer micro-USD.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::usage::CallUsage;

const BUILT_IN: &str = include_str!("../../../../config/model-prices.yaml");

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

#[derive(Debug, Clone)]
pub struct Prices {
    /// By model-name prefix; `default` for the rest.
    table: BTreeMap<String, Price>,
}

impl Prices {
    /// The built-in table, or the file's when `file` is given.
    pub fn load(file: Option<&Path>) -> Result<Prices, String> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("MODEL_PRICES_FILE {}: {e}", path.display()))?,
            None => BUILT_IN.to_owned(),
        };
        let table: BTreeMap<String, Price> =
            serde_saphyr::from_str(&text).map_err(|e| format!("model prices: {e}"))?;
        if !table.contains_key("default") {
            return Err("model prices: a `default` entry is required".into());
        }
        if table.values().any(|p| {
            [p.input, p.output, p.cache_write, p.cache_read]
                .iter()
                .any(|v| !(v.is_finite() && *v >= 0.0))
        }) {
            return Err("model prices: every price must be a non-negative number".into());
        }
        Ok(Prices { table })
    }

    /// The price of `model`: the longest matching prefix, else `default`.
    pub fn of(&self, model: Option<&str>) -> Price {
        let model = model.unwrap_or_default();
        let best = self
            .table
            .iter()
            .filter(|(prefix, _)| *prefix != "default" && model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len());
        match best {
            Some((_, price)) => *price,
            None => self.table["default"],
        }
    }

    /// What one call cost, in micro-USD (USD per million tokens is exactly
    /// micro-USD per token).
    pub fn cost_micros(&self, usage: &CallUsage) -> i64 {
        let p = self.of(usage.model.as_deref());
        let micros = usage.input_tokens as f64 * p.input
            + usage.output_tokens as f64 * p.output
            + usage.cache_creation_input_tokens as f64 * p.cache_write
            + usage.cache_read_input_tokens as f64 * p.cache_read;
        micros.round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_prices_a_model() {
        let prices = Prices::load(None).unwrap();
        assert_eq!(prices.of(Some("claude-opus-4-20250514")).input, 15.0);
        assert_eq!(prices.of(Some("claude-opus-4-5-20251101")).input, 5.0);
        assert_eq!(prices.of(Some("claude-sonnet-4-5")).output, 15.0);
        assert_eq!(prices.of(Some("something-else")), prices.of(None));
        let usage = CallUsage {
            model: Some("claude-sonnet-4-5".into()),
            input_tokens: 1000,
            output_tokens: 100,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 10_000,
        };
        // 1000 × 3 + 100 × 15 + 10000 × 0.3 micro-USD
        assert_eq!(prices.cost_micros(&usage), 3000 + 1500 + 3000);
    }
}
