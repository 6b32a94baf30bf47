//! Reading variables by their entry in the table: the default is the
//! table's, and an error names the variable (hiding a secret's value).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::table::{self, IfUnset, Var};
use super::ConfigError;

/// The variables one `Settings` is built from.
pub(super) struct Env<'a> {
    vars: &'a BTreeMap<String, String>,
    /// The names looked up, for the test that every listed one is read.
    #[cfg(test)]
    pub read: std::cell::RefCell<std::collections::BTreeSet<&'static str>>,
}

impl<'a> Env<'a> {
    pub fn new(vars: &'a BTreeMap<String, String>) -> Env<'a> {
        Env {
            vars,
            #[cfg(test)]
            read: Default::default(),
        }
    }

    pub fn vars(&self) -> &'a BTreeMap<String, String> {
        self.vars
    }

    /// The table's entry; reading a variable it does not list is a bug.
    fn entry(&self, name: &str) -> &'static Var {
        let var = table::lookup(name).unwrap_or_else(|| panic!("{name} is not in config/table.rs"));
        #[cfg(test)]
        self.read.borrow_mut().insert(var.name);
        var
    }

    /// A variable of the system rather than of the server (`HOME`).
    pub fn system(&self, name: &str) -> Option<String> {
        self.raw(name)
    }

    fn raw(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value set, if any (never the default).
    pub fn get(&self, name: &str) -> Option<String> {
        self.entry(name);
        self.raw(name)
    }

    /// The value set, else the table's default value.
    pub fn get_or_default(&self, name: &str) -> Option<String> {
        match (self.get(name), self.entry(name).default) {
            (Some(v), _) => Some(v),
            (None, IfUnset::Value(v)) if !v.is_empty() => Some(v.to_owned()),
            (None, _) => None,
        }
    }

    /// The text of a variable with a default value.
    pub fn string(&self, name: &str) -> String {
        self.get_or_default(name)
            .unwrap_or_else(|| panic!("{name} has no default value in config/table.rs"))
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get_or_default(name).map(PathBuf::from)
    }

    /// An error about `name` (the value hidden for a secret).
    pub fn error(&self, name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            name: name.into(),
            value: if self.entry(name).secret {
                "(hidden)".into()
            } else {
                value.into()
            },
            reason: reason.into(),
        }
    }

    /// The value set, else the default, parsed; `None` when neither is.
    pub fn parse_opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get_or_default(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e: T::Err| self.error(name, &raw, e.to_string())),
        }
    }

    /// Like `parse_opt`, for a variable with a default value.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self
            .parse_opt(name)?
            .unwrap_or_else(|| panic!("{name} has no default value in config/table.rs")))
    }

    /// Like `parse_opt`, refusing a value outside `min..=max`.
    pub fn bounded_opt<T>(&self, name: &str, min: T, max: T) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_opt::<T>(name)?;
        match value {
            Some(v) if v < min || v > max => Err(self.error(
                name,
                &v.to_string(),
                format!("must be between {min} and {max}"),
            )),
            _ => Ok(value),
        }
    }

    pub fn bounded<T>(&self, name: &str, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        Ok(self
            .bounded_opt(name, min, max)?
            .unwrap_or_else(|| panic!("{name} has no default value in config/table.rs")))
    }

    /// Whole seconds, within `min..=max`.
    pub fn seconds(&self, name: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.bounded(name, min, max).map(Duration::from_secs)
    }

    /// Comma-separated items, empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get_or_default(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An amount of USD given as a decimal, as micro-USD; must be positive.
    pub fn usd_micros(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        let Some(raw) = self.get_or_default(name) else {
            return Ok(None);
        };
        match raw.parse::<f64>() {
            Ok(usd) if usd.is_finite() && usd > 0.0 && usd < 1e9 => {
                Ok(Some((usd * 1_000_000.0).round() as i64))
            }
            _ => Err(self.error(name, &raw, "expected a positive amount of USD, e.g. 12.50")),
        }
    }
}
