//! Option values: parsing a config string by the option's type (booleans, SI and IEC sizes,
//! durations, bounds) and formatting it back as Ceph shows it.

use super::super::error::{Error, Result};
use super::super::options::{OptDef, OptType};

/// A parsed value. `Size` options hold `Uint` (bytes), `Secs` options hold `Float` (seconds).
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Splits `123K` into the number and its suffix; the sign belongs to the number.
pub(super) fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    (&s[..end], s[end..].trim())
}

/// Integers with Ceph's optional SI suffix (`strict_si_cast`: K = 1000).
pub(super) fn parse_si_int(s: &str) -> Option<i128> {
    let (num, suffix) = split_number(s.trim());
    let n: i128 = num.parse().ok()?;
    n.checked_mul(1000i128.pow(unit_power(&suffix.to_ascii_uppercase())?))
}

/// The power of the unit a size suffix names (`K` = 1, ... `E` = 6; none = 0).
fn unit_power(unit: &str) -> Option<u32> {
    ["", "K", "M", "G", "T", "P", "E"]
        .iter()
        .position(|u| *u == unit)
        .map(|p| p as u32)
}

/// Byte counts with Ceph's IEC suffixes (`strict_iec_cast`): `4K`, `4KiB`, `4KB` all mean 4096.
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let (num, suffix) = split_number(s.trim());
    if num.starts_with('-') || num.contains('.') {
        return None;
    }
    let n: u128 = num.trim_start_matches('+').parse().ok()?;
    let mut unit = suffix.to_ascii_uppercase();
    if unit.len() > 1 && unit.ends_with('B') {
        unit.pop();
    }
    if unit.len() > 1 && unit.ends_with('I') {
        unit.pop();
    }
    let exp = if unit == "B" { 0 } else { unit_power(&unit)? };
    u64::try_from(n.checked_mul(1024u128.pow(exp))?).ok()
}

/// Seconds, optionally with a unit: `30`, `1.5`, `30s`, `5m`, `2h`, `1d`.
pub(super) fn parse_secs(s: &str) -> Option<f64> {
    let (num, unit) = split_number(s.trim());
    let n: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Parses and checks a value for `def`: type, range, allowed values and the option's own validator.
pub fn parse_value(def: &OptDef, raw: &str) -> Result<OptValue> {
    let name = &def.name;
    let s = raw.trim();
    let bad = |what: &str| Error::inval(format!("{name}: '{raw}' is not {what}"));
    let v = match def.ty {
        OptType::Str => {
            let v = match def.validator {
                Some(check) => check(raw).map_err(|e| Error::inval(format!("{name}: {}", e.msg)))?,
                None => raw.to_string(),
            };
            if !def.enum_values.is_empty() && !def.enum_values.contains(&v.as_str()) {
                return Err(Error::inval(format!(
                    "{name}: '{raw}' is not one of the allowed values: {}",
                    def.enum_values.join(", ")
                )));
            }
            OptValue::Str(v)
        }
        OptType::Bool => OptValue::Bool(parse_bool(s).ok_or_else(|| bad("a boolean (true/false/yes/no/1/0)"))?),
        OptType::Int => {
            let n = parse_si_int(s).ok_or_else(|| bad("an integer"))?;
            OptValue::Int(i64::try_from(n).map_err(|_| bad("an integer in the 64-bit range"))?)
        }
        OptType::Uint => {
            let n = parse_si_int(s).ok_or_else(|| bad("a non-negative integer"))?;
            OptValue::Uint(u64::try_from(n).map_err(|_| bad("a non-negative integer in the 64-bit range"))?)
        }
        OptType::Size => {
            OptValue::Uint(parse_size(s).ok_or_else(|| bad("a size in bytes (e.g. 4096, 64K, 100M, 1G)"))?)
        }
        OptType::Float => {
            let f: f64 = s.parse().map_err(|_| bad("a number"))?;
            if !f.is_finite() {
                return Err(bad("a finite number"));
            }
            OptValue::Float(f)
        }
        OptType::Secs => OptValue::Float(parse_secs(s).ok_or_else(|| bad("a duration in seconds (e.g. 30, 1.5, 5m)"))?),
    };
    let n = match v {
        OptValue::Int(i) => i as f64,
        OptValue::Uint(u) => u as f64,
        OptValue::Float(f) => f,
        _ => return Ok(v),
    };
    if let Some(min) = def.min.filter(|&m| n < m) {
        return Err(Error::inval(format!("{name}: value {s} is below the minimum {min}")));
    }
    if let Some(max) = def.max.filter(|&m| n > m) {
        return Err(Error::inval(format!("{name}: value {s} is above the maximum {max}")));
    }
    Ok(v)
}

/// The text Ceph prints for a value (`Option::to_str`): floats as C's `%f`, sizes in bytes.
/// `Secs` print as plain seconds so the text parses back.
pub(super) fn format_value(ty: OptType, v: &OptValue) -> String {
    match v {
        OptValue::Str(s) => s.clone(),
        OptValue::Bool(b) => b.to_string(),
        OptValue::Int(i) => i.to_string(),
        OptValue::Uint(u) => u.to_string(),
        OptValue::Float(f) if ty == OptType::Secs => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                format!("{f}")
            }
        }
        OptValue::Float(f) => format!("{f:.6}"),
    }
}

pub(super) fn zero_value(ty: OptType) -> OptValue {
    match ty {
        OptType::Str => OptValue::Str(String::new()),
        OptType::Bool => OptValue::Bool(false),
        OptType::Int => OptValue::Int(0),
        OptType::Uint | OptType::Size => OptValue::Uint(0),
        OptType::Float | OptType::Secs => OptValue::Float(0.0),
    }
}
