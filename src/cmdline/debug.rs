//! The bring-up options of el2visor's command line: what happens when a guest crashes
//! (`on_crash=`, `crash_restarts=`) and which guest events are traced (`trace=`). Pure parsing;
//! docs/debugging.md says what each does.

use alloc::string::String;

/// `on_crash=`: what el2visor does when a guest panics (pvpanic, or the panic line on its
/// virtual console).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Print the report and let the guest go on (its own `panic=N` reboot then happens, and
    /// counts towards `crash_restarts=`).
    #[default]
    Report,
    /// Print the report and reset the VM at once (as a PSCI SYSTEM_RESET would).
    Restart,
    /// Print the report and end the VM.
    Halt,
    /// Print the report, stop every vCPU of the VM and wait for a debugger.
    Debug,
}

impl CrashPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "report" => CrashPolicy::Report,
            "restart" => CrashPolicy::Restart,
            "halt" => CrashPolicy::Halt,
            "debug" => CrashPolicy::Debug,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CrashPolicy::Report => "report",
            CrashPolicy::Restart => "restart",
            CrashPolicy::Halt => "halt",
            CrashPolicy::Debug => "debug",
        }
    }
}

/// The default `crash_restarts=`: restarts in a row before a crashing VM is halted.
pub const DEFAULT_CRASH_RESTARTS: u32 = 3;

/// One class of `trace=` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceClass {
    /// Trapped MSR/MRS the Rust slow path serves (not the TVM fast path's).
    Sysreg,
    /// Every SMCCC call: PSCI, SMCCC, el2visor's vendor calls.
    Psci,
    /// Every emulated MMIO access (vGIC, vpl011, pvpanic) with its value.
    Mmio,
    /// Physical interrupts taken while a guest ran or idled.
    Irq,
    /// Every Stage-2 abort exit, with what el2visor made of it.
    S2fault,
}

impl TraceClass {
    pub const ALL: [TraceClass; 5] =
        [TraceClass::Sysreg, TraceClass::Psci, TraceClass::Mmio, TraceClass::Irq, TraceClass::S2fault];

    pub fn name(self) -> &'static str {
        match self {
            TraceClass::Sysreg => "sysreg",
            TraceClass::Psci => "psci",
            TraceClass::Mmio => "mmio",
            TraceClass::Irq => "irq",
            TraceClass::S2fault => "s2fault",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn bit(self) -> u8 {
        1 << self.index()
    }
}

/// A set of trace classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceSet(pub u8);

impl TraceSet {
    pub fn contains(self, c: TraceClass) -> bool {
        self.0 & c.bit() != 0
    }

    /// A comma list of class names (`sysreg,psci`): the set of the known ones, and the first
    /// unknown name if there is one (the known ones are traced all the same). An empty word
    /// (`trace=`, `trace=psci,`) is allowed and adds nothing.
    pub fn parse(s: &str) -> (Self, Option<String>) {
        let mut set = 0u8;
        let mut unknown = None;
        for w in s.split(',').filter(|w| !w.is_empty()) {
            match TraceClass::ALL.iter().find(|c| c.name() == w) {
                Some(c) => set |= c.bit(),
                None => {
                    unknown.get_or_insert_with(|| String::from(w));
                }
            }
        }
        (TraceSet(set), unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip() {
        for p in [CrashPolicy::Report, CrashPolicy::Restart, CrashPolicy::Halt, CrashPolicy::Debug] {
            assert_eq!(CrashPolicy::parse(p.name()), Some(p));
        }
        assert_eq!(CrashPolicy::parse("reboot"), None);
        assert_eq!(CrashPolicy::default(), CrashPolicy::Report);
    }

    #[test]
    fn trace_sets() {
        let s = TraceSet::parse("psci,s2fault").0;
        assert!(s.contains(TraceClass::Psci) && s.contains(TraceClass::S2fault));
        assert!(!s.contains(TraceClass::Mmio) && !s.contains(TraceClass::Irq) && !s.contains(TraceClass::Sysreg));
        let (all, bad) = TraceSet::parse("sysreg,psci,mmio,irq,s2fault");
        assert_eq!(bad, None);
        assert!(TraceClass::ALL.iter().all(|&c| all.contains(c)));
        assert_eq!(TraceSet::parse(""), (TraceSet(0), None));
        let psci_irq = TraceSet(TraceClass::Psci.bit() | TraceClass::Irq.bit());
        assert_eq!(TraceSet::parse("psci,,irq,"), (psci_irq, None));
        assert_eq!(TraceSet::parse("psci,bogus,irq,worse"), (psci_irq, Some(String::from("bogus"))), "the known ones stay");
        assert_eq!(TraceSet::parse("PSCI"), (TraceSet(0), Some(String::from("PSCI"))), "names are lower case");
    }
}
