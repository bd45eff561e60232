//! el2visor's own command line: the host device tree's `/chosen/bootargs`.
//!
//! Whitespace-separated `key=value` words:
//!
//! | word | values | default |
//! |---|---|---|
//! | `coherency=` | `auto`, `fwb`, `mair-trap`, `off` | `auto` |
//! | `fastpath=` | `on`, `off` (the TVM-trap fast path in the vector) | `on` |
//! | `its=` | `on`, `off`: a virtual ITS for the VM that owns the PCI host bridge on a GICv3 host with an ITS (`off`: its PCI devices use INTx) | `on` |
//! | `loglevel=` | `error`, `warn`, `info`, `debug`, `trace` | `info` |
//! | `console=` | `hyp`, `guest`: who owns the UART while a guest runs | `guest` |
//! | `guest_mem=` | a size in bytes, with an optional `K`, `M`, `G` or `T` suffix (like Xen's `dom0_mem`) | none: the VM plan decides |
//! | `guest_cpus=` | a vCPU count, at least 1 | none: one per CPU |
//! | `debug_uart=` | the DT path of a PL011 (like `/pl011@9040000`) for el2visor's GDB stub: no VM gets it (docs/debugging.md) | none: no stub |
//! | `guest_args=` | the embedded guest's command line, one word: each `,` becomes a space (`guest_args=a,b` gives `a b`) | empty |
//! | `on_crash=` | `report`, `restart`, `halt`, `debug`: what a guest panic does ([`debug`]) | `report` |
//! | `crash_restarts=` | restarts in a row of a VM that keeps crashing before it is halted (0: halt at once) | 3 |
//! | `trace=` | a comma list of `sysreg`, `psci`, `mmio`, `irq`, `s2fault`: guest events to print, rate limited | none |
//! | `s2_ram=` | `auto`, `pages`, `blocks`: guest RAM at Stage 2 with 4 KiB pages, or with 2 MiB / 1 GiB blocks where aligned; `auto` takes pages on QEMU's emulated `virt` machine without `snapshot_mem=`, blocks otherwise (docs/architecture.md, section 5, "builds Stage 2") | `auto` |
//!
//!
//! The snapshot words (`snapshot_mem=`, `snapshot_on=`, `reset=`, `restores=`, `restore=`) are
//! in [`snapshot`].
//!
//! `guest_args=` applies to the guest built into el2visor (`make image`'s probe guest) only: a
//! multiboot kernel or a bundle carries its own command line.
//!
//! [`parse`] never stops at a bad word: it returns the options it could read together with every
//! problem (unknown word, bad value, repeated key), so that boot can print each one.

#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub mod debug;

pub use self::debug::{CrashPolicy, TraceClass, TraceSet, DEFAULT_CRASH_RESTARTS};
pub mod snapshot;
pub use snapshot::{RestoreKind, SnapshotOptions};

/// What `coherency=` asks for; `crate::coherency::resolve` weighs it against what the CPU offers.
pub use crate::coherency::Request as Coherency;

/// Who drives the UART while a guest runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsoleOwner {
    /// el2visor keeps it: it is not mapped into the guest, and the guest's DT has it disabled.
    Hyp,
    /// Passed through to the guest (premapped at Stage 2, as every device it is given);
    /// el2visor still writes its own messages to it, a whole line at a time.
    #[default]
    Guest,
}

/// Log verbosity (maps onto `log::LevelFilter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }

    /// The filter the command line's own problems are reported under: this level's, but never
    /// one that hides a warning (`loglevel=error` must not hide the typo beside it).
    pub fn for_problems(self) -> log::LevelFilter {
        self.filter().max(log::LevelFilter::Warn)
    }
}

/// The options the command line sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub coherency: Coherency,
    /// Serve TVM-trapped register writes in the assembly fast path.
    pub fastpath: bool,
    /// Give the dom0-like VM a virtual ITS (docs/its.md).
    pub its: bool,
    pub loglevel: LogLevel,
    pub console: ConsoleOwner,
    /// Guest RAM in bytes.
    pub guest_mem: Option<u64>,
    pub guest_cpus: Option<u32>,
    /// The embedded guest's command line (`guest_args=`, commas turned into spaces).
    pub guest_args: Option<String>,
    /// What a guest panic does (`on_crash=`).
    pub on_crash: CrashPolicy,
    /// Restarts in a row before a crashing VM is halted (`crash_restarts=`).
    pub crash_restarts: u32,
    /// Guest events to trace (`trace=`).
    pub trace: TraceSet,
    /// The DT path of the UART the GDB stub serves (`debug_uart=`).
    pub debug_uart: Option<String>,
    /// The snapshot options (`snapshot::KEYS`).
    pub snapshot: SnapshotOptions,
    /// Guest RAM at Stage 2 with 4 KiB pages (`s2_ram=pages`) or with blocks where aligned
    /// (`s2_ram=blocks`); `None` (`s2_ram=auto`, the default): pages on QEMU's emulated `virt`
    /// machine without `snapshot_mem=`, blocks otherwise (docs/architecture.md, section 5,
    /// "builds Stage 2").
    pub s2_ram_pages: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            coherency: Coherency::Auto,
            fastpath: true,
            its: true,
            loglevel: LogLevel::Info,
            console: ConsoleOwner::Guest,
            guest_mem: None,
            guest_cpus: None,
            guest_args: None,
            on_crash: CrashPolicy::Report,
            crash_restarts: DEFAULT_CRASH_RESTARTS,
            trace: TraceSet(0),
            debug_uart: None,
            snapshot: SnapshotOptions::default(),
            s2_ram_pages: None,
        }
    }
}

/// Something on the command line that was not taken as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A word that is not `key=value` with a known key.
    Unknown { word: String },
    /// A known key with a value it cannot take.
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A key given more than once: the last one is used.
    Repeated { key: &'static str },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unknown { word } => write!(
                f,
                "command line: unknown word {word:?} ignored (known: coherency=, fastpath=, its=, \
                 loglevel=, console=, guest_mem=, guest_cpus=, guest_args=, \
                 on_crash=, crash_restarts=, trace=, debug_uart=, s2_ram=, \
                 snapshot_mem=, snapshot_on=, reset=, restores=, restore=)"
            ),
            Problem::BadValue {
                key,
                value,
                expected,
            } => {
                write!(
                    f,
                    "command line: {key}={value:?} ignored: expected {expected}"
                )
            }
            Problem::Repeated { key } => {
                write!(
                    f,
                    "command line: {key}= given more than once; the last one is used"
                )
            }
        }
    }
}

/// The largest size [`parse_size`] accepts: the whole of a 52-bit physical address space. Sizes
/// are rounded up to 2 MiB blocks where they are used; a value near `u64::MAX` would wrap to 0.
pub const MAX_SIZE: u64 = 1 << 52;

/// Parses a size: decimal (or `0x` hex) bytes with an optional K/M/G/T suffix (binary units),
/// non-zero and at most [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => num.parse::<u64>().ok()?,
    };
    let v = n.checked_mul(1u64 << shift)?;
    (v > 0 && v <= MAX_SIZE).then_some(v)
}

const KEYS: [&str; 13] = [
    "coherency",
    "fastpath",
    "its",
    "loglevel",
    "console",
    "guest_mem",
    "guest_cpus",
    "guest_args",
    "on_crash",
    "crash_restarts",
    "trace",
    "debug_uart",
    "s2_ram",
];

/// The guest command line a `guest_args=` value stands for: the one word with each `,` made a
/// space, since el2visor's own command line splits at whitespace.
pub fn guest_args_value(word: &str) -> String {
    word.replace(',', " ")
}

/// Parses the command line. Bad words leave the option at its default (or earlier value).
pub fn parse(cmdline: &str) -> (Options, Vec<Problem>) {
    let mut o = Options::default();
    let mut problems = Vec::new();
    let mut seen = [false; KEYS.len()];
    let mut seen_snapshot: Vec<&str> = Vec::new();
    for word in cmdline.split_whitespace() {
        let Some((k, value)) = word.split_once('=') else {
            problems.push(Problem::Unknown { word: word.into() });
            continue;
        };
        if let Some(r) = snapshot::parse_word(k, value, &mut o.snapshot) {
            if let Some(key) = snapshot::KEYS.iter().find(|&&s| s == k) {
                if seen_snapshot.contains(key) {
                    problems.push(Problem::Repeated { key });
                }
                seen_snapshot.push(key);
            }
            if let Err(p) = r {
                problems.push(p);
            }
            continue;
        }
        let Some(idx) = KEYS.iter().position(|&key| key == k) else {
            problems.push(Problem::Unknown { word: word.into() });
            continue;
        };
        let key = KEYS[idx];
        if seen[idx] {
            problems.push(Problem::Repeated { key });
        }
        seen[idx] = true;
        let bad = |expected| Problem::BadValue {
            key,
            value: value.into(),
            expected,
        };
        let ok = match key {
            "coherency" => match value {
                "auto" => Ok(Coherency::Auto),
                "fwb" => Ok(Coherency::Fwb),
                "mair-trap" => Ok(Coherency::MairTrap),
                "off" => Ok(Coherency::Off),
                _ => Err(bad("auto, fwb, mair-trap or off")),
            }
            .map(|c| o.coherency = c),
            "fastpath" => match value {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(bad("on or off")),
            }
            .map(|f| o.fastpath = f),
            "its" => match value {
                "on" => Ok(true),
                "off" => Ok(false),
                _ => Err(bad("on or off")),
            }
            .map(|f| o.its = f),
            "loglevel" => match value {
                "error" => Ok(LogLevel::Error),
                "warn" => Ok(LogLevel::Warn),
                "info" => Ok(LogLevel::Info),
                "debug" => Ok(LogLevel::Debug),
                "trace" => Ok(LogLevel::Trace),
                _ => Err(bad("error, warn, info, debug or trace")),
            }
            .map(|l| o.loglevel = l),
            "console" => match value {
                "hyp" => Ok(ConsoleOwner::Hyp),
                "guest" => Ok(ConsoleOwner::Guest),
                _ => Err(bad("hyp or guest")),
            }
            .map(|c| o.console = c),
            "guest_mem" => parse_size(value)
                .map(|v| o.guest_mem = Some(v))
                .ok_or_else(|| bad("a non-zero size up to 4096T, like 512M or 2G")),
            "guest_args" => {
                o.guest_args = Some(guest_args_value(value));
                Ok(())
            }
            "on_crash" => CrashPolicy::parse(value)
                .map(|p| o.on_crash = p)
                .ok_or_else(|| bad("report, restart, halt or debug")),
            "crash_restarts" => value
                .parse::<u32>()
                .map(|n| o.crash_restarts = n)
                .map_err(|_| bad("a number of restarts (0 or more)")),
            "trace" => {
                let (set, unknown) = TraceSet::parse(value);
                o.trace = set;
                match unknown {
                    None => Ok(()),
                    Some(class) => Err(Problem::BadValue {
                        key,
                        value: class,
                        expected: "a trace class: sysreg, psci, mmio, irq or s2fault (the known ones are traced)",
                    }),
                }
            }
            "s2_ram" => match value {
                "auto" => Ok(None),
                "pages" => Ok(Some(true)),
                "blocks" => Ok(Some(false)),
                _ => Err(bad("auto, pages or blocks")),
            }
            .map(|v| o.s2_ram_pages = v),
            "debug_uart" => {
                if value.starts_with('/') && value.len() > 1 {
                    o.debug_uart = Some(value.into());
                    Ok(())
                } else {
                    Err(bad("a device tree path like /pl011@9040000"))
                }
            }
            _ => match value.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(bad("a CPU count of at least 1")),
            }
            .map(|n| o.guest_cpus = Some(n)),
        };
        if let Err(p) = ok {
            problems.push(p);
        }
    }
    (o, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn empty_gives_defaults() {
        assert_eq!(parse(""), (Options::default(), Vec::new()));
        assert_eq!(parse("  \t\n "), (Options::default(), Vec::new()));
        let d = Options::default();
        assert_eq!(
            (d.coherency, d.fastpath, d.console),
            (Coherency::Auto, true, ConsoleOwner::Guest)
        );
    }

    #[test]
    fn problems_are_reported_whatever_the_loglevel() {
        let (o, p) = parse("loglevel=error bogus");
        assert_eq!(p, [Problem::Unknown { word: "bogus".into() }]);
        assert_eq!(o.loglevel.filter(), log::LevelFilter::Error, "the level still applies after them");
        assert!(log::Level::Warn <= o.loglevel.for_problems(), "loglevel=error hid the unknown word");
        assert_eq!(LogLevel::Warn.for_problems(), log::LevelFilter::Warn);
        assert_eq!(LogLevel::Trace.for_problems(), log::LevelFilter::Trace, "never quieter than asked");
    }

    #[test]
    fn every_key() {
        let (o, p) = parse(
            "coherency=mair-trap fastpath=off loglevel=trace console=guest guest_mem=512M guest_cpus=3",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o.coherency, Coherency::MairTrap);
        assert!(!o.fastpath);
        assert_eq!(o.loglevel, LogLevel::Trace);
        assert_eq!(o.loglevel.filter(), log::LevelFilter::Trace);
        assert_eq!(o.console, ConsoleOwner::Guest);
        assert_eq!(o.guest_mem, Some(512 << 20));
        assert_eq!(o.guest_cpus, Some(3));
        for (v, r) in [
            ("auto", Coherency::Auto),
            ("fwb", Coherency::Fwb),
            ("off", Coherency::Off),
        ] {
            assert_eq!(parse(&std::format!("coherency={v}")).0.coherency, r);
        }
        for (v, l) in [
            ("error", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("debug", LogLevel::Debug),
        ] {
            assert_eq!(parse(&std::format!("loglevel={v}")).0.loglevel, l);
        }
        assert_eq!(parse("console=hyp").0.console, ConsoleOwner::Hyp);
        assert!(parse("fastpath=on").0.fastpath);
        assert!(parse("").0.its);
        assert!(!parse("its=off").0.its);
        assert_eq!(parse("its=maybe").1.len(), 1);
    }

    #[test]
    fn s2_ram_is_auto_pages_or_blocks() {
        assert_eq!(parse("").0.s2_ram_pages, None);
        assert_eq!(parse("s2_ram=pages").0.s2_ram_pages, Some(true));
        assert_eq!(parse("s2_ram=blocks s2_ram=auto").0.s2_ram_pages, None);
        let (o, p) = parse("s2_ram=blocks");
        assert!(o.s2_ram_pages == Some(false) && p.is_empty(), "{p:?}");
        let (o, p) = parse("s2_ram=huge");
        assert_eq!(o.s2_ram_pages, None);
        assert!(matches!(p[..], [Problem::BadValue { key: "s2_ram", .. }]), "{p:?}");
    }

    #[test]
    fn debug_uart_takes_a_dt_path() {
        let (o, p) = parse("debug_uart=/pl011@9040000");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o.debug_uart.as_deref(), Some("/pl011@9040000"));
        assert_eq!(parse("").0.debug_uart, None);
        for bad in ["debug_uart=serial1", "debug_uart=/", "debug_uart="] {
            let (o, p) = parse(bad);
            assert_eq!(o.debug_uart, None, "{bad}");
            assert!(matches!(p[..], [Problem::BadValue { key: "debug_uart", .. }]), "{bad}: {p:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("0x1000"), Some(0x1000));
        assert_eq!(parse_size("0x10M"), Some(16 << 20));
        assert_eq!(parse_size("4096T"), Some(MAX_SIZE));
        for bad in [
            "",
            "G",
            "0",
            "0M",
            "1.5G",
            "-1G",
            "12Q",
            "99999999999999999999",
            "20000000T",
            // Would wrap to 0 when rounded up to 2 MiB (snapshot_mem=, guest_mem=).
            "0xffffffffffffffff",
            "4097T",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn problems_are_reported_not_dropped() {
        let (o, p) = parse("quiet coherency=maybe guest_mem=lots guest_cpus=0 fastpath=yes loglevel=loud console=uart foo=bar");
        assert_eq!(o, Options::default(), "bad values keep the defaults");
        assert_eq!(p.len(), 8, "{p:?}");
        assert_eq!(
            p[0],
            Problem::Unknown {
                word: "quiet".into()
            }
        );
        assert!(
            matches!(&p[1], Problem::BadValue { key: "coherency", value, .. } if value == "maybe")
        );
        assert!(matches!(
            &p[2],
            Problem::BadValue {
                key: "guest_mem",
                ..
            }
        ));
        assert!(matches!(
            &p[3],
            Problem::BadValue {
                key: "guest_cpus",
                ..
            }
        ));
        assert!(matches!(
            &p[4],
            Problem::BadValue {
                key: "fastpath",
                ..
            }
        ));
        assert!(matches!(
            &p[5],
            Problem::BadValue {
                key: "loglevel",
                ..
            }
        ));
        assert!(matches!(&p[6], Problem::BadValue { key: "console", .. }));
        assert_eq!(
            p[7],
            Problem::Unknown {
                word: "foo=bar".into()
            }
        );
        assert!(p[1]
            .to_string()
            .contains("coherency=\"maybe\" ignored: expected auto, fwb, mair-trap or off"));
        assert!(p[0].to_string().contains("unknown word \"quiet\""));
        let (_, p) = parse("coherency=");
        assert!(
            matches!(&p[0], Problem::BadValue { key: "coherency", value, .. } if value.is_empty())
        );
    }

    #[test]
    fn guest_args_turn_commas_into_spaces() {
        assert_eq!(parse("").0.guest_args, None, "no guest_args: the embedded guest gets none");
        assert_eq!(parse("guest_args=bench").0.guest_args.as_deref(), Some("bench"));
        assert_eq!(parse("guest_args=a,b").0.guest_args.as_deref(), Some("a b"));
        let (o, p) = parse("coherency=mair-trap guest_args=console=ttyAMA0,,bench, fastpath=off");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o.guest_args.as_deref(), Some("console=ttyAMA0  bench "), "only the first = splits the key");
        assert_eq!(o.coherency, Coherency::MairTrap);
        assert!(!o.fastpath, "words after guest_args= are still el2visor's");
        assert_eq!(parse("guest_args=").0.guest_args.as_deref(), Some(""));
        assert_eq!(guest_args_value("a,b,c"), "a b c");
        let (o, p) = parse("guest_args=one guest_args=two,three");
        assert_eq!(o.guest_args.as_deref(), Some("two three"));
        assert_eq!(p, [Problem::Repeated { key: "guest_args" }]);
        let unknown = Problem::Unknown { word: "bench".into() }.to_string();
        assert!(unknown.contains("guest_args="), "{unknown}");
    }

    #[test]
    fn crash_and_trace_options() {
        let d = Options::default();
        assert_eq!((d.on_crash, d.crash_restarts, d.trace), (CrashPolicy::Report, 3, TraceSet(0)));
        let (o, p) = parse("on_crash=halt crash_restarts=2 trace=psci,s2fault");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o.on_crash, CrashPolicy::Halt);
        assert_eq!(o.crash_restarts, 2);
        assert!(o.trace.contains(TraceClass::Psci) && o.trace.contains(TraceClass::S2fault));
        assert_eq!(parse("crash_restarts=0").0.crash_restarts, 0);
        let (o, p) = parse("on_crash=explode crash_restarts=-1 trace=psci,nope");
        assert_eq!((o.on_crash, o.crash_restarts), (CrashPolicy::Report, 3));
        assert_eq!(o.trace, TraceSet(TraceClass::Psci.bit()), "the known class is traced");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[2].to_string().contains("trace=\"nope\" ignored: expected a trace class"), "{}", p[2]);
        assert!(Problem::Unknown { word: "x".into() }.to_string().contains("on_crash="));
    }

    #[test]
    fn repeated_key_last_wins_and_is_reported() {
        let (o, p) = parse("guest_cpus=2 guest_cpus=4");
        assert_eq!(o.guest_cpus, Some(4));
        assert_eq!(p, [Problem::Repeated { key: "guest_cpus" }]);
        assert!(p[0].to_string().contains("more than once"));
    }
}
