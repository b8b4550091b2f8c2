//! Configuration values: Ceph's layered config (default < mon < file < env < cmdline < override),
//! metavariable expansion and runtime observers. Value parsing is in `value`, the `ceph.conf`
//! reader in `ini`.
//!
//! Each option keeps one value per level it was set at; the final value is the highest level's.
//! Keeping the layers (rather than overwriting) is what lets `config unset` fall back to the file's
//! value and `config diff` show where a value came from.

mod ini;
#[cfg(test)]
mod tests;
mod value;

use super::entity::EntityName;
use super::error::{Error, Result};
use super::formatter::FVal;
use super::options::{self, normalize_key, OptType};
use ini::{parse_ini, IniEntry};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use value::{format_value, parse_bool, zero_value};
pub use value::{parse_value, OptValue};

/// Where a value came from; later variants win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfLevel {
    Default,
    Mon,
    File,
    Env,
    Cmdline,
    Override,
}

impl ConfLevel {
    pub const ALL: [ConfLevel; 6] = [
        ConfLevel::Default,
        ConfLevel::Mon,
        ConfLevel::File,
        ConfLevel::Env,
        ConfLevel::Cmdline,
        ConfLevel::Override,
    ];

    /// The names `config diff` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfLevel::Default => "default",
            ConfLevel::Mon => "mon",
            ConfLevel::File => "file",
            ConfLevel::Env => "env",
            ConfLevel::Cmdline => "cmdline",
            ConfLevel::Override => "override",
        }
    }
}

pub type ObserverFn = Arc<dyn Fn(&[String]) + Send + Sync>;

/// `$var` chains longer than this are left unexpanded: a misconfiguration, not worth a stack overflow.
const MAX_EXPAND_DEPTH: usize = 8;

/// Variables that are not options (Ceph's `CONF_METAVARIABLES`, minus the ones we have no use for).
const METAVARIABLES: &[&str] = &["cluster", "type", "name", "host", "num", "id", "pid", "home"];

/// Parsed compiled-in defaults, indexed like `options::all()`.
static DEFAULTS: LazyLock<Vec<OptValue>> = LazyLock::new(|| {
    options::all()
        .iter()
        .map(|d| {
            parse_value(d, &d.default).unwrap_or_else(|e| {
                // A table bug; the options tests catch it, so a daemon never runs with it.
                log::error!("bad default for option {}: {e}", d.name);
                zero_value(d.ty)
            })
        })
        .collect()
});

/// Values set per level. A `Default` entry is this instance's default (Ceph's `set_val_default`,
/// e.g. no admin socket for library clients), which replaces the compiled-in one.
type Levels = BTreeMap<ConfLevel, OptValue>;

fn final_of(vals: &[Levels], i: usize) -> &OptValue {
    vals[i].values().next_back().unwrap_or(&DEFAULTS[i])
}

fn default_of(vals: &[Levels], i: usize) -> &OptValue {
    vals[i].get(&ConfLevel::Default).unwrap_or(&DEFAULTS[i])
}

/// Whether a value comes from a source other than a default.
fn is_configured(levels: &Levels) -> bool {
    levels.keys().any(|l| *l != ConfLevel::Default)
}

struct Observer {
    keys: Vec<String>,
    f: ObserverFn,
}

fn short_hostname() -> String {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    full.split('.').next().unwrap_or(&full).to_string()
}

/// The configuration of one daemon or client. All methods take `&self`; share it in an `Arc`.
pub struct Config {
    name: EntityName,
    cluster: String,
    hostname: String,
    values: RwLock<Vec<Levels>>,
    observers: Mutex<BTreeMap<u64, Observer>>,
    next_observer: AtomicU64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(name: EntityName, cluster: &str) -> Config {
        Config {
            name,
            cluster: cluster.to_string(),
            hostname: short_hostname(),
            values: RwLock::new(vec![Levels::new(); options::all().len()]),
            observers: Mutex::new(BTreeMap::new()),
            next_observer: AtomicU64::new(1),
        }
    }

    pub fn name(&self) -> &EntityName {
        &self.name
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn index(key: &str) -> Result<usize> {
        options::index_of(key).ok_or_else(|| Error::noent(format!("no such configuration option '{}'", key.trim())))
    }

    /// Reads a `ceph.conf`-style file; see [`Config::parse_str`].
    pub fn parse_file(&self, path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(e, format!("cannot read config file '{}'", path.display())))?;
        let prefix = |m: &str| format!("{}: {m}", path.display());
        self.parse_str(&text)
            .map(|w| w.iter().map(|m| prefix(m)).collect())
            .map_err(|e| Error::new(e.errno, prefix(&e.msg)))
    }

    /// Applies a config file's text at [`ConfLevel::File`] and returns warnings (unknown keys...).
    ///
    /// Only `[global]`, `[<type>]` and `[<type>.<id>]` apply, the more specific winning. A syntax
    /// error or an invalid value fails the whole text, so a daemon never starts half-configured.
    pub fn parse_str(&self, text: &str) -> Result<Vec<String>> {
        let (entries, mut warnings) = parse_ini(text)?;
        let ty = self.name.ty.as_str();
        let full = self.name.to_string();
        let rank = |section: &str| match section {
            "global" => Some(0),
            s if s == ty => Some(1),
            s if s == full => Some(2),
            _ => None,
        };
        // key → (rank, entry); later lines of the same rank win, as in Ceph.
        let mut chosen: BTreeMap<&str, (u8, &IniEntry)> = BTreeMap::new();
        for e in &entries {
            let Some(r) = rank(&e.section) else { continue };
            if options::index_of(&e.key).is_none() {
                warnings.push(format!(
                    "line {}: unknown option '{}' in [{}] ignored",
                    e.line, e.key, e.section
                ));
                continue;
            }
            match chosen.get(e.key.as_str()) {
                Some((old, _)) if *old > r => {}
                _ => {
                    chosen.insert(&e.key, (r, e));
                }
            }
        }
        let mut items = Vec::with_capacity(chosen.len());
        for (_, e) in chosen.values() {
            let i = Self::index(&e.key)?;
            let v = parse_value(&options::all()[i], &e.value)
                .map_err(|err| Error::inval(format!("line {}: {}", e.line, err.msg)))?;
            items.push((i, v));
        }
        let changed = self.apply(ConfLevel::File, items);
        self.notify(&changed);
        Ok(warnings)
    }

    /// Sets `key` at `level`. Observers of `key` are told if the final value changed.
    pub fn set_val(&self, key: &str, value: &str, level: ConfLevel) -> Result<()> {
        self.set_vals(&[(key, value)], level)
    }

    /// Sets several keys at once: all are checked before any is applied, and each observer is told
    /// once with every changed key it watches.
    pub fn set_vals(&self, kv: &[(&str, &str)], level: ConfLevel) -> Result<()> {
        let mut items = Vec::with_capacity(kv.len());
        for (k, v) in kv {
            let i = Self::index(k)?;
            items.push((i, parse_value(&options::all()[i], v)?));
        }
        let changed = self.apply(level, items);
        self.notify(&changed);
        Ok(())
    }

    /// Stores checked values and returns the names whose final value changed.
    fn apply(&self, level: ConfLevel, items: Vec<(usize, OptValue)>) -> Vec<String> {
        let mut vals = self.values.write();
        let mut before: BTreeMap<usize, OptValue> = BTreeMap::new();
        for (i, v) in items {
            before.entry(i).or_insert_with(|| final_of(&vals, i).clone());
            vals[i].insert(level, v);
        }
        before
            .into_iter()
            .filter(|(i, old)| final_of(&vals, *i) != old)
            .map(|(i, _)| options::all()[i].name.clone())
            .collect()
    }

    /// Removes the value set at `level`; returns whether there was one.
    pub fn rm_val(&self, key: &str, level: ConfLevel) -> Result<bool> {
        let i = Self::index(key)?;
        let (removed, changed) = {
            let mut vals = self.values.write();
            let old = final_of(&vals, i).clone();
            let removed = vals[i].remove(&level).is_some();
            (removed, *final_of(&vals, i) != old)
        };
        if changed {
            self.notify(&[options::all()[i].name.clone()]);
        }
        Ok(removed)
    }

    /// The final value; `Str` values have their metavariables expanded.
    pub fn get_val(&self, key: &str) -> Result<OptValue> {
        let i = Self::index(key)?;
        let vals = self.values.read();
        Ok(match final_of(&vals, i) {
            OptValue::Str(s) => OptValue::Str(self.expand(&vals, s, &mut vec![i])),
            v => v.clone(),
        })
    }

    /// The final value as `config get`/`config show` print it.
    pub fn get_val_str(&self, key: &str) -> Result<String> {
        let i = Self::index(key)?;
        let vals = self.values.read();
        Ok(self.value_string(&vals, i, &mut vec![i]))
    }

    fn get_or_warn(&self, key: &str) -> Option<OptValue> {
        match self.get_val(key) {
            Ok(v) => Some(v),
            Err(e) => {
                log::warn!("config: {}", e.msg);
                None
            }
        }
    }

    /// `get_val_str` for code that names a known option; "" (and a warning) if it is unknown.
    pub fn get_str(&self, key: &str) -> String {
        match self.get_val_str(key) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("config: {}", e.msg);
                String::new()
            }
        }
    }

    pub fn get_bool(&self, key: &str) -> bool {
        match self.get_or_warn(key) {
            Some(OptValue::Bool(b)) => b,
            Some(OptValue::Int(i)) => i != 0,
            Some(OptValue::Uint(u)) => u != 0,
            Some(OptValue::Float(f)) => f != 0.0,
            Some(OptValue::Str(s)) => parse_bool(&s).unwrap_or(false),
            None => false,
        }
    }

    /// Numeric getters convert between numeric types (saturating), so callers need not care
    /// whether Ceph declared an option `int` or `uint`.
    pub fn get_u64(&self, key: &str) -> u64 {
        match self.get_or_warn(key) {
            Some(OptValue::Uint(u)) => u,
            Some(OptValue::Int(i)) => u64::try_from(i).unwrap_or(0),
            Some(OptValue::Float(f)) => f as u64,
            Some(OptValue::Bool(b)) => u64::from(b),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0),
            None => 0,
        }
    }

    pub fn get_i64(&self, key: &str) -> i64 {
        match self.get_or_warn(key) {
            Some(OptValue::Int(i)) => i,
            Some(OptValue::Uint(u)) => i64::try_from(u).unwrap_or(i64::MAX),
            Some(OptValue::Float(f)) => f as i64,
            Some(OptValue::Bool(b)) => i64::from(b),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0),
            None => 0,
        }
    }

    pub fn get_f64(&self, key: &str) -> f64 {
        match self.get_or_warn(key) {
            Some(OptValue::Float(f)) => f,
            Some(OptValue::Int(i)) => i as f64,
            Some(OptValue::Uint(u)) => u as f64,
            Some(OptValue::Bool(b)) => f64::from(u8::from(b)),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0.0),
            None => 0.0,
        }
    }

    /// Expands `$cluster`, `$name`, `$id`, `$type`, `$host`, `$pid`, `$home`, `$num` and any option
    /// name (`$run_dir`), also as `${var}`. Unknown variables and loops are left as written.
    pub fn expand_meta(&self, s: &str) -> String {
        let vals = self.values.read();
        self.expand(&vals, s, &mut Vec::new())
    }

    fn value_string(&self, vals: &[Levels], i: usize, stack: &mut Vec<usize>) -> String {
        match final_of(vals, i) {
            OptValue::Str(s) => self.expand(vals, s, stack),
            v => format_value(options::all()[i].ty, v),
        }
    }

    fn is_var(var: &str) -> bool {
        METAVARIABLES.contains(&var) || options::index_of(var).is_some()
    }

    fn resolve(&self, vals: &[Levels], var: &str, stack: &mut Vec<usize>) -> Option<String> {
        Some(match var {
            "cluster" => self.cluster.clone(),
            "type" => self.name.ty.as_str().to_string(),
            "name" => self.name.to_string(),
            "id" | "num" => self.name.id.clone(),
            "pid" => std::process::id().to_string(),
            "home" => std::env::var("HOME").unwrap_or_default(),
            "host" => match options::index_of("host").and_then(|i| self.option_var(vals, i, stack)) {
                Some(h) if !h.is_empty() => h,
                _ => self.hostname.clone(),
            },
            _ => return self.option_var(vals, options::index_of(var)?, stack),
        })
    }

    fn option_var(&self, vals: &[Levels], i: usize, stack: &mut Vec<usize>) -> Option<String> {
        if stack.contains(&i) || stack.len() >= MAX_EXPAND_DEPTH {
            log::warn!(
                "config: not expanding ${}: it refers to itself or nests too deep",
                options::all()[i].name
            );
            return None;
        }
        stack.push(i);
        let s = self.value_string(vals, i, stack);
        stack.pop();
        Some(s)
    }

    fn expand(&self, vals: &[Levels], s: &str, stack: &mut Vec<usize>) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(inner) = after.strip_prefix('{') {
                if let Some(end) = inner.find('}') {
                    match self.resolve(vals, &inner[..end], stack) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&rest[pos..pos + end + 3]),
                    }
                    rest = &inner[end + 1..];
                    continue;
                }
            }
            let ident_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            // Ceph matches variables by prefix, so `$id_x` is `$id` followed by `_x`; prefer the longest.
            let var_len = (1..=ident_len).rev().find(|&n| Self::is_var(&after[..n]));
            match var_len.and_then(|n| Some((n, self.resolve(vals, &after[..n], stack)?))) {
                Some((n, v)) => {
                    out.push_str(&v);
                    rest = &after[n..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Registers `f` for changes of `keys`; returns an id for [`Config::remove_observer`].
    pub fn add_observer(&self, keys: &[&str], f: ObserverFn) -> u64 {
        let id = self.next_observer.fetch_add(1, Ordering::Relaxed);
        let keys = keys.iter().map(|k| normalize_key(k)).collect();
        self.observers.lock().insert(id, Observer { keys, f });
        id
    }

    /// A call already under way may still complete after this returns.
    pub fn remove_observer(&self, id: u64) {
        self.observers.lock().remove(&id);
    }

    pub fn is_observed(&self, key: &str) -> bool {
        let k = normalize_key(key);
        self.observers.lock().values().any(|o| o.keys.contains(&k))
    }

    /// Calls observers with no lock held, so they may read or even set config themselves.
    fn notify(&self, changed: &[String]) {
        if changed.is_empty() {
            return;
        }
        let calls: Vec<(ObserverFn, Vec<String>)> = self
            .observers
            .lock()
            .values()
            .filter_map(|o| {
                let mine: Vec<String> = changed.iter().filter(|k| o.keys.contains(k)).cloned().collect();
                (!mine.is_empty()).then(|| (o.f.clone(), mine))
            })
            .collect();
        for (f, keys) in calls {
            f(&keys);
        }
    }

    /// `config set <key> <val>...`: applies at [`ConfLevel::Override`] and returns Ceph's report.
    pub fn set_from_admin(&self, key: &str, vals: &[String]) -> Result<String> {
        let i = Self::index(key)?;
        let def = &options::all()[i];
        let value = vals.join(" ");
        self.set_val(&def.name, &value, ConfLevel::Override)?;
        let shown = {
            let vals = self.values.read();
            vals[i]
                .get(&ConfLevel::Override)
                .map(|v| format_value(def.ty, v))
                .unwrap_or(value)
        };
        let mut report = format!("{} = '{}' ", def.name, shown);
        if !self.is_observed(&def.name) {
            report.push_str("(not observed, change may require restart) ");
        }
        Ok(report)
    }

    /// `config show`: name, cluster, then every option's final value as a string.
    pub fn show(&self) -> FVal {
        let vals = self.values.read();
        let mut out = FVal::obj()
            .with("name", FVal::str(self.name.to_string()))
            .with("cluster", FVal::str(&self.cluster));
        for (i, d) in options::all().iter().enumerate() {
            out.push(d.name.clone(), FVal::str(self.value_string(&vals, i, &mut vec![i])));
        }
        out
    }

    /// `config diff`: options set above the default, with each level's value, the default and the final.
    pub fn diff(&self) -> FVal {
        let vals = self.values.read();
        let mut diff = FVal::obj();
        for (i, d) in options::all().iter().enumerate() {
            if !is_configured(&vals[i]) {
                continue;
            }
            let mut o = FVal::obj().with("default", FVal::str(format_value(d.ty, default_of(&vals, i))));
            for (level, v) in vals[i].iter().filter(|(l, _)| **l != ConfLevel::Default) {
                o.push(level.as_str(), FVal::str(format_value(d.ty, v)));
            }
            o.push("final", FVal::str(self.value_string(&vals, i, &mut vec![i])));
            diff.push(d.name.clone(), o);
        }
        FVal::obj().with("diff", diff)
    }

    /// Names of the options set at a level above the default, sorted.
    pub fn changed_keys_since_default(&self) -> Vec<String> {
        let vals = self.values.read();
        options::all()
            .iter()
            .enumerate()
            .filter(|(i, _)| is_configured(&vals[*i]))
            .map(|(_, d)| d.name.clone())
            .collect()
    }

    /// `config help [key]`: one option's schema, or `{"options": [...]}` for all.
    pub fn help(&self, key: Option<&str>) -> Result<FVal> {
        match key {
            Some(k) => {
                let i = options::index_of(k)
                    .ok_or_else(|| Error::noent(format!("No such configuration option '{}'", k.trim())))?;
                Ok(schema(i))
            }
            None => Ok(FVal::obj().with("options", FVal::Arr((0..options::all().len()).map(schema).collect()))),
        }
    }

    /// Applies `--key value` / `--key=value` (and `--flag`, `--no-flag` for booleans) at
    /// [`ConfLevel::Cmdline`]; returns the arguments that are not options, in order.
    pub fn parse_argv(&self, args: &[String]) -> Result<Vec<String>> {
        self.parse_args_at(args, ConfLevel::Cmdline)
    }

    /// [`Config::parse_argv`] at another level (`injectargs` uses [`ConfLevel::Override`]).
    /// Nothing is applied if any argument is bad.
    pub fn parse_args_at(&self, args: &[String], level: ConfLevel) -> Result<Vec<String>> {
        let mut rest = Vec::new();
        let mut items = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            if arg == "--" {
                rest.push(arg.clone());
                rest.extend(it.cloned());
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                rest.push(arg.clone());
                continue;
            };
            let (k, inline) = match body.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (body, None),
            };
            let negated = |k: &str| {
                let i = options::index_of(k.strip_prefix("no-").or_else(|| k.strip_prefix("no_"))?)?;
                (options::all()[i].ty == OptType::Bool).then_some(i)
            };
            let (i, value) = if let Some(i) = options::index_of(k) {
                let def = &options::all()[i];
                let value = match inline {
                    Some(v) => v.to_string(),
                    None if def.ty == OptType::Bool => match it.peek() {
                        Some(next) if parse_bool(next).is_some() => it.next().cloned().unwrap_or_default(),
                        _ => "true".to_string(),
                    },
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| Error::inval(format!("--{k} needs a value")))?,
                };
                (i, value)
            } else if let Some(i) = negated(k) {
                if inline.is_some() {
                    return Err(Error::inval(format!("--{k} takes no value")));
                }
                (i, "false".to_string())
            } else {
                rest.push(arg.clone());
                continue;
            };
            items.push((i, parse_value(&options::all()[i], &value)?));
        }
        let changed = self.apply(level, items);
        self.notify(&changed);
        Ok(rest)
    }
}

fn typed(ty: OptType, v: &OptValue) -> FVal {
    match v {
        OptValue::Str(s) => FVal::str(s),
        OptValue::Bool(b) => FVal::Bool(*b),
        OptValue::Int(i) => FVal::I64(*i),
        OptValue::Uint(u) => FVal::U64(*u),
        OptValue::Float(f) if ty == OptType::Secs && f.fract() == 0.0 => FVal::U64(*f as u64),
        OptValue::Float(f) => FVal::F64(*f),
    }
}

fn bound(ty: OptType, b: Option<f64>) -> FVal {
    match (ty, b) {
        (OptType::Int, Some(b)) => FVal::I64(b as i64),
        (OptType::Uint | OptType::Size, Some(b)) => FVal::U64(b as u64),
        (OptType::Float | OptType::Secs, Some(b)) => FVal::F64(b),
        _ => FVal::str(""),
    }
}

/// Ceph's `Option::dump` field order and shape.
fn schema(i: usize) -> FVal {
    let d = &options::all()[i];
    let strs = |v: &[&str]| FVal::Arr(v.iter().map(|s| FVal::str(*s)).collect());
    let flags: &[&str] = if d.runtime { &["runtime"] } else { &[] };
    FVal::obj()
        .with("name", FVal::str(&d.name))
        .with("type", FVal::str(d.ty.as_str()))
        .with("level", FVal::str(d.level.as_str()))
        .with("desc", FVal::str(&d.desc))
        .with("long_desc", FVal::str(&d.long_desc))
        .with("default", typed(d.ty, &DEFAULTS[i]))
        .with("daemon_default", FVal::str(""))
        .with("tags", FVal::Arr(Vec::new()))
        .with("services", strs(d.services))
        .with("see_also", strs(d.see_also))
        .with("enum_values", strs(d.enum_values))
        .with("min", bound(d.ty, d.min))
        .with("max", bound(d.ty, d.max))
        .with("can_update_at_runtime", FVal::Bool(d.runtime))
        .with("flags", strs(flags))
}
