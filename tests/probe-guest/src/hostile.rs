//! The pure parts of the hostile probe (`probes::hostile` in the binary): which addresses the IPA
//! scan touches, what an injected abort looks like, the GICv3 SGI register encoding, the GIC's
//! advertised interrupt lines and the PSCI answers a call naming a CPU outside the VM may get.

/// The scan covers at most this many IPA bits (a TiB): enough for every address a 40-bit
/// Stage 2 could map, and it finishes in seconds under QEMU TCG at the coarse step.
pub const MAX_SCAN_BITS: u32 = 40;

/// Which addresses the IPA scan reads and writes: every `coarse_step` from `fine_end` up to
/// `end` first, then every `fine_step` below `fine_end` (the first 4 GiB, where QEMU virt has
/// every device and RAM starts, and so where a wrong mapping would most likely point): the
/// addresses that matter most come last, when the VM beside it has long been up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanPlan {
    pub fine_step: u64,
    pub fine_end: u64,
    pub coarse_step: u64,
    pub end: u64,
}

impl ScanPlan {
    /// The plan for a CPU with `pa_bits` of physical address space (ID_AA64MMFR0_EL1.PARange):
    /// the IPA space a guest can name with its MMU off, capped at [`MAX_SCAN_BITS`].
    pub fn new(pa_bits: u32, fine_step: u64, coarse_step: u64) -> Self {
        let end = 1u64 << pa_bits.min(MAX_SCAN_BITS);
        ScanPlan {
            fine_step,
            fine_end: (1u64 << 32).min(end),
            coarse_step,
            end,
        }
    }

    /// The segments in the order they are scanned: (start, end, step).
    pub fn segments(&self) -> [(u64, u64, u64); 2] {
        [
            (self.fine_end, self.end, self.coarse_step),
            (0, self.fine_end, self.fine_step),
        ]
    }

    /// Every address of the plan, in order.
    pub fn addresses(&self) -> impl Iterator<Item = u64> {
        self.segments()
            .into_iter()
            .flat_map(|(start, end, step)| (start..end).step_by(step as usize))
    }

    /// How many addresses the plan touches.
    pub fn count(&self) -> u64 {
        self.segments()
            .iter()
            .map(|&(start, end, step)| (end - start).div_ceil(step))
            .sum()
    }
}

/// The value of `key=` in a command line.
pub fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// ESR_EL1.EC of a data abort taken from the current EL.
pub const EC_DABT_SAME_EL: u64 = 0x25;
/// DFSC of a synchronous external abort (what el2visor injects for an address a VM does not own).
pub const DFSC_SYNC_EXTERNAL: u64 = 0b01_0000;

/// Whether `esr` (ESR_EL1) is the synchronous external abort on a data access that el2visor
/// injects for an IPA the VM does not own.
pub fn is_injected_abort(esr: u64) -> bool {
    (esr >> 26) & 0x3f == EC_DABT_SAME_EL && esr & 0x3f == DFSC_SYNC_EXTERNAL
}

/// An ICC_SGI1R_EL1 (or ICC_ASGI1R/ICC_SGI0R) value: SGI `intid` to the PEs of cluster
/// `aff3.aff2.aff1` whose Aff0 is `rs * 16 + bit` for each bit of `list`, or to every PE but the
/// sender with `irm`.
pub fn sgi1r(intid: u32, aff3: u8, aff2: u8, aff1: u8, rs: u8, list: u16, irm: bool) -> u64 {
    u64::from(list)
        | u64::from(aff1) << 16
        | u64::from(intid & 0xf) << 24
        | u64::from(aff2) << 32
        | u64::from(irm) << 40
        | u64::from(rs & 0xf) << 44
        | u64::from(aff3) << 48
}

/// The interrupt lines GICD_TYPER advertises (ITLinesNumber: 32 * (N + 1), at most 1020).
pub fn gic_lines(typer: u32) -> u32 {
    (32 * ((typer & 0x1f) + 1)).min(1020)
}

/// PSCI return codes.
pub mod psci {
    pub const SUCCESS: i64 = 0;
    pub const NOT_SUPPORTED: i64 = -1;
    pub const INVALID_PARAMETERS: i64 = -2;
    pub const ALREADY_ON: i64 = -4;

    pub const VERSION: u64 = 0x8400_0000;
    pub const CPU_ON_32: u64 = 0x8400_0003;
    pub const CPU_ON_64: u64 = 0xc400_0003;
    pub const AFFINITY_INFO_32: u64 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u64 = 0xc400_0004;
    pub const MIGRATE_64: u64 = 0xc400_0005;
    pub const NODE_HW_STATE_64: u64 = 0xc400_000d;
    pub const STAT_RESIDENCY_64: u64 = 0xc400_0010;
    pub const STAT_COUNT_64: u64 = 0xc400_0011;

    /// The answers PSCI allows for a call naming a CPU the caller's system does not have:
    /// INVALID_PARAMETERS, or NOT_SUPPORTED for an optional function the implementation lacks
    /// (MIGRATE, NODE_HW_STATE, the statistics); CPU_ON and AFFINITY_INFO are mandatory, so only
    /// INVALID_PARAMETERS will do for them.
    pub fn refuses_foreign_cpu(fid: u64, ret: i64) -> bool {
        match fid {
            CPU_ON_32 | CPU_ON_64 | AFFINITY_INFO_32 | AFFINITY_INFO_64 => {
                ret == INVALID_PARAMETERS
            }
            _ => ret == INVALID_PARAMETERS || ret == NOT_SUPPORTED,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn scan_plan_covers_the_capped_space() {
        let p = ScanPlan::new(48, 64 << 10, 2 << 20);
        assert_eq!(p.end, 1 << 40);
        assert_eq!(
            p.count(),
            (1 << 32) / (64 << 10) + ((1 << 40) - (1 << 32)) / (2 << 20)
        );
        let all: std::vec::Vec<u64> = p.addresses().collect();
        assert_eq!(all.len() as u64, p.count());
        assert_eq!(all[0], 1 << 32, "above 4 GiB first");
        assert_eq!(all[1], (1 << 32) + (2 << 20));
        let low = all.iter().position(|&a| a == 0).unwrap();
        assert_eq!(all[low - 1], (1 << 40) - (2 << 20));
        assert_eq!(all[low + 1], 64 << 10);
        assert_eq!(*all.last().unwrap(), (1 << 32) - (64 << 10));
        let small = ScanPlan::new(32, 4096, 2 << 20);
        assert_eq!(
            (small.fine_end, small.end, small.count()),
            (1 << 32, 1 << 32, 1 << 20)
        );
    }

    #[test]
    fn command_line_values() {
        assert_eq!(arg("hostile wait=30 x=1", "wait"), Some("30"));
        assert_eq!(arg("hostile waiting=30", "wait"), None);
        assert_eq!(arg("wait", "wait"), None);
    }

    #[test]
    fn injected_abort_is_a_data_sea() {
        // EC 0x25, IL, DFSC 0x10 (what the abort_injected probe sees), read and write.
        assert!(is_injected_abort(0x9600_0010));
        assert!(is_injected_abort(0x9600_0050));
        assert!(
            !is_injected_abort(0x9600_0004),
            "a translation fault at level 0"
        );
        assert!(
            !is_injected_abort(0x9200_0010),
            "EC 0x24 comes from a lower EL"
        );
        assert!(!is_injected_abort(0x0200_0000), "an UNDEF");
    }

    #[test]
    fn sgi1r_fields() {
        // Linux's encoding for Aff0 = 2 in cluster 0, INTID 5 (see el2visor's gic/vgic/sgi.rs).
        assert_eq!(sgi1r(5, 0, 0, 0, 0, 1 << 2, false), 5 << 24 | 1 << 2);
        assert_eq!(
            sgi1r(15, 3, 2, 1, 1, 0xffff, true),
            0xffff | 1 << 16 | 15 << 24 | 2 << 32 | 1 << 40 | 1 << 44 | 3 << 48
        );
    }

    #[test]
    fn lines_and_psci_answers() {
        assert_eq!(gic_lines(0), 32);
        assert_eq!(gic_lines(1 | 9 << 19), 64);
        assert_eq!(gic_lines(0x1f), 1020);
        assert!(psci::refuses_foreign_cpu(psci::CPU_ON_64, -2));
        assert!(!psci::refuses_foreign_cpu(psci::CPU_ON_64, -1));
        assert!(!psci::refuses_foreign_cpu(psci::AFFINITY_INFO_64, 1));
        assert!(psci::refuses_foreign_cpu(psci::MIGRATE_64, -1));
        assert!(!psci::refuses_foreign_cpu(psci::NODE_HW_STATE_64, 0));
    }
}
