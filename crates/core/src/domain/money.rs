//! Money: exact integer micro-USD everywhere it is kept or added; USD
//! floats only where the CLI reports them and where clients read them.

/// Micro-USD from the CLI's float USD.
pub fn usd_to_micros(usd: f64) -> i64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1_000_000.0).round() as i64
    } else {
        0
    }
}

/// USD for display from micro-USD.
pub fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}
