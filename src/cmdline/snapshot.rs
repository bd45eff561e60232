//! The snapshot options (docs/snapshots.md):
//!
//! | word | values | default |
//! |---|---|---|
//! | `snapshot_mem=` | a size: the pool each VM's snapshot area comes from (its RAM's size, at its first snapshot) | none: no snapshots |
//! | `snapshot_on=` | text, one word (each `,` becomes a space): a VM takes its snapshot when it prints it; `<vm>:<text>` for that VM only (`vm::snapshot::plan::watch_text`; a word whose part before the first `:` names no VM, or with nothing after it, such as `login:` or `domU1:`, is a text for every VM) | none |
//! | `reset=` | `reboot`, `snapshot`: what PSCI SYSTEM_RESET does | `reboot` |
//! | `restores=` | how many resets restore the snapshot before the next one powers the VM off | unlimited |
//! | `restore=` | `eager`, `lazy`, `dirty`: how `reset=snapshot` and the console's `restore <vm>` restore | `dirty` |

#![forbid(unsafe_code)]

use alloc::string::String;

use super::{parse_size, Problem};

/// How a restore brings the VM's RAM back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreKind {
    /// Copy all of RAM back, then run (blocks kept).
    Eager,
    /// Zap RAM, userfault on: each page is copied back at its first access.
    Lazy,
    /// Copy back only the pages written since the snapshot (log-dirty on since then).
    DirtyOnly,
}

impl RestoreKind {
    /// The kind's code in the vendor call's argument (trap::abi::vendor).
    pub const fn code(self) -> u64 {
        match self {
            RestoreKind::Eager => 0,
            RestoreKind::Lazy => 1,
            RestoreKind::DirtyOnly => 2,
        }
    }
    pub const fn from_code(c: u64) -> Option<Self> {
        match c {
            0 => Some(RestoreKind::Eager),
            1 => Some(RestoreKind::Lazy),
            2 => Some(RestoreKind::DirtyOnly),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            RestoreKind::Eager => "eager",
            RestoreKind::Lazy => "lazy",
            RestoreKind::DirtyOnly => "dirty",
        }
    }
}

/// The snapshot options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// `snapshot_mem=`: bytes set aside for the snapshots' copies of RAM (every VM's).
    pub mem: Option<u64>,
    /// `snapshot_on=`: take the snapshot when the VM prints this (as given: `<vm>:` included).
    pub on: Option<String>,
    /// `reset=snapshot`: SYSTEM_RESET restores the snapshot.
    pub reset_restores: bool,
    /// `restores=`: at most this many restores by reset; the next reset powers the VM off.
    pub restores: Option<u32>,
    /// `restore=`: the kind `reset=snapshot` uses.
    pub kind: RestoreKind,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { mem: None, on: None, reset_restores: false, restores: None, kind: RestoreKind::DirtyOnly }
    }
}

pub(super) const KEYS: [&str; 5] = ["snapshot_mem", "snapshot_on", "reset", "restores", "restore"];

/// Take `key=value` if `key` is one of [`KEYS`]: `None` when it is not.
pub(super) fn parse_word(key: &str, value: &str, o: &mut SnapshotOptions) -> Option<Result<&'static str, Problem>> {
    let key: &'static str = KEYS.iter().find(|&&k| k == key)?;
    let bad = |expected| Problem::BadValue { key, value: value.into(), expected };
    let r = match key {
        "snapshot_mem" => parse_size(value).map(|v| o.mem = Some(v)).ok_or_else(|| bad("a non-zero size up to 4096T, like 1G")),
        "snapshot_on" if !value.is_empty() => {
            o.on = Some(value.replace(',', " "));
            Ok(())
        }
        "snapshot_on" => Err(bad("the text to wait for")),
        "reset" => match value {
            "reboot" => Ok(false),
            "snapshot" => Ok(true),
            _ => Err(bad("reboot or snapshot")),
        }
        .map(|r| o.reset_restores = r),
        "restores" => value.parse::<u32>().map(|n| o.restores = Some(n)).map_err(|_| bad("a count")),
        _ => match value {
            "eager" => Ok(RestoreKind::Eager),
            "lazy" => Ok(RestoreKind::Lazy),
            "dirty" => Ok(RestoreKind::DirtyOnly),
            _ => Err(bad("eager, lazy or dirty")),
        }
        .map(|k| o.kind = k),
    };
    Some(r.map(|()| key))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn snapshot_words() {
        let (o, p) = parse("snapshot_mem=1G snapshot_on=init,done reset=snapshot restores=20 restore=lazy");
        assert!(p.is_empty(), "{p:?}");
        let s = o.snapshot;
        assert_eq!(s.mem, Some(1 << 30));
        assert_eq!(s.on.as_deref(), Some("init done"));
        assert!(s.reset_restores);
        assert_eq!(s.restores, Some(20));
        assert_eq!(s.kind, RestoreKind::Lazy);
        assert_eq!(parse("").0.snapshot, SnapshotOptions::default());
    }

    #[test]
    fn bad_snapshot_words_are_reported() {
        let (o, p) = parse("snapshot_mem=0 reset=maybe restores=-1 restore=fast snapshot_on= reset=reboot reset=reboot");
        assert_eq!(o.snapshot, SnapshotOptions::default());
        assert_eq!(p.len(), 7, "{p:?}");
        assert!(matches!(p[0], Problem::BadValue { key: "snapshot_mem", .. }));
        assert!(matches!(p[6], Problem::Repeated { key: "reset" }));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [RestoreKind::Eager, RestoreKind::Lazy, RestoreKind::DirtyOnly] {
            assert_eq!(RestoreKind::from_code(k.code()), Some(k));
        }
        assert_eq!(RestoreKind::from_code(3), None);
    }
}
