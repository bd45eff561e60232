//! The hostile probe against the VM's GIC (found by its DT node):
//!
//! - `hostile_gic_observe`: before the VM touches anything, no interrupt outside its own (SGIs,
//!   PPIs and the SPIs its DT nodes name) reads enabled, pending or active;
//! - `hostile_gic_writes`: all ones to every word of the distributor (and its redistributor, or
//!   CPU interface), then enable, set-pending, set-active, priority, configuration and group of
//!   every INTID up to 1019, ITARGETSR naming every CPU interface and IROUTER naming other
//!   CPUs; everything beyond what GICD_TYPER advertises must read back as zero, and ITARGETSR
//!   may keep only the VM's own CPU interfaces;
//! - `hostile_sgi`: with its SGIs disabled, SGIs sent to every target list, affinity, range and
//!   "all but self" naming CPUs outside the VM (GICD_SGIR, ICC_SGI1R/ASGI1R/SGI0R_EL1) must not
//!   become pending anywhere it can see; an SGI to itself must (else the check sees nothing).
//!
//! That they reach no other VM is shown by the Linux VM beside it, which stops if its CPUs get
//! stray IPIs or lose their timer interrupts.

use super::{read32, read64, write32, write64, write_sgi, SgiReg};
use crate::report;
use fdt::Fdt;
use probe_guest::hostile::{gic_lines, sgi1r};
use probe_guest::msg;
use probe_guest::msg::Msg;

const V2_COMPATIBLES: [&str; 4] = [
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a7-gic",
    "arm,arm11mp-gic",
];
/// GICv3 redistributor: RD_base then SGI_base, 64 KiB each.
const REDIST_STRIDE: u64 = 0x2_0000;
const SGI_BASE: u64 = 0x1_0000;
const ISENABLER: u64 = 0x100;
const ICENABLER: u64 = 0x180;
const ISPENDR: u64 = 0x200;
const ICPENDR: u64 = 0x280;
const ISACTIVER: u64 = 0x300;
const ICACTIVER: u64 = 0x380;
const IGROUPR: u64 = 0x080;
const IPRIORITYR: u64 = 0x400;
const ITARGETSR: u64 = 0x800;
const ICFGR: u64 = 0xc00;
const SGIR: u64 = 0xf00;
const CPENDSGIR: u64 = 0xf10;
const SPENDSGIR: u64 = 0xf20;
const IROUTER: u64 = 0x6000;

#[derive(Clone, Copy, Debug)]
pub enum Gic {
    V2 {
        dist: u64,
        cpu: u64,
        cpu_size: u64,
    },
    V3 {
        dist: u64,
        dist_size: u64,
        redist: u64,
        redist_size: u64,
    },
}

fn regs(node: fdt::node::FdtNode<'_, '_>) -> [(u64, u64); 2] {
    let mut out = [(0, 0); 2];
    for (i, r) in node.reg().into_iter().flatten().take(2).enumerate() {
        out[i] = (r.starting_address as u64, r.size.unwrap_or(0) as u64);
    }
    out
}

fn find(fdt: &Fdt<'_>) -> Option<Gic> {
    for node in fdt.all_nodes() {
        let Some(c) = node.compatible() else { continue };
        if c.all().any(|s| s == "arm,gic-v3") {
            let [(dist, dist_size), (redist, redist_size)] = regs(node);
            return Some(Gic::V3 {
                dist,
                dist_size,
                redist,
                redist_size,
            });
        }
        if c.all().any(|s| V2_COMPATIBLES.contains(&s)) {
            let [(dist, _), (cpu, cpu_size)] = regs(node);
            return Some(Gic::V2 {
                dist,
                cpu,
                cpu_size,
            });
        }
    }
    None
}

/// The INTIDs the VM owns, 32 per word: its banked SGIs and PPIs and every SPI or PPI a DT node
/// names in a three-cell `interrupts` specifier.
fn own_interrupts(fdt: &Fdt<'_>) -> [u32; 32] {
    let mut own = [0u32; 32];
    own[0] = u32::MAX;
    for node in fdt.all_nodes() {
        let Some(p) = node.property("interrupts") else {
            continue;
        };
        for spec in p.value.chunks_exact(12) {
            let cell = |i: usize| {
                u32::from_be_bytes([
                    spec[4 * i],
                    spec[4 * i + 1],
                    spec[4 * i + 2],
                    spec[4 * i + 3],
                ])
            };
            let intid = match cell(0) {
                0 => 32 + cell(1),
                1 => 16 + cell(1),
                _ => continue,
            };
            if intid < 1020 {
                own[(intid / 32) as usize] |= 1 << (intid % 32);
            }
        }
    }
    own
}

/// The probe's view of its GIC: where each bank of registers lives.
pub struct View {
    pub gic: Gic,
    /// GICv3: this vCPU's redistributor (RD_base).
    pub rd: u64,
    /// MPIDR_EL1 affinity (Aff3 in 39:32, Aff2..Aff0 in 23:0).
    mpidr: u64,
    /// The INTIDs the VM owns (see [`own_interrupts`]).
    own: [u32; 32],
}

impl View {
    fn dist(&self) -> u64 {
        match self.gic {
            Gic::V2 { dist, .. } | Gic::V3 { dist, .. } => dist,
        }
    }

    /// The address of word `n` of a bitmap or byte-per-INTID register at `base` in the
    /// distributor, or for the banked word 0 (GICv3: words 0..7 of priorities, 0..1 of ICFGR)
    /// in the redistributor's SGI_base frame.
    fn word(&self, base: u64, n: u64, banked_words: u64) -> u64 {
        match self.gic {
            Gic::V3 { .. } if n < banked_words => self.rd + SGI_BASE + base + 4 * n,
            _ => self.dist() + base + 4 * n,
        }
    }

    fn bitmap(&self, base: u64, n: u64) -> u64 {
        self.word(base, n, 1)
    }

    /// SGIs (0..15) pending for this vCPU, from ISPENDR0 and (GICv2) SPENDSGIR.
    fn pending_sgis(&self) -> Result<u32, Msg> {
        let mut p = rd(self.bitmap(ISPENDR, 0))? & 0xffff;
        if let Gic::V2 { dist, .. } = self.gic {
            for w in 0..4 {
                let bytes = rd(dist + SPENDSGIR + 4 * w)?;
                for b in 0..4 {
                    if (bytes >> (8 * b)) & 0xff != 0 {
                        p |= 1 << (4 * w + b);
                    }
                }
            }
        }
        Ok(p)
    }

    fn clear_sgis(&self) -> Result<(), Msg> {
        wr(self.bitmap(ICENABLER, 0), 0xffff)?;
        wr(self.bitmap(ICPENDR, 0), 0xffff)?;
        if let Gic::V2 { dist, .. } = self.gic {
            for w in 0..4 {
                wr(dist + CPENDSGIR + 4 * w, u32::MAX)?;
            }
        }
        Ok(())
    }
}

fn rd(a: u64) -> Result<u32, Msg> {
    read32(a).map_err(|esr| msg!("reading {a:#x} aborted (ESR_EL1 {esr:#x})"))
}

fn wr(a: u64, v: u32) -> Result<(), Msg> {
    write32(a, v).map_err(|esr| msg!("writing {v:#x} to {a:#x} aborted (ESR_EL1 {esr:#x})"))
}

fn mpidr() -> u64 {
    let m: u64;
    // SAFETY: reading MPIDR_EL1 has no side effect.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    m & 0xff_00ff_ffff
}

/// GICv3: the redistributor whose GICR_TYPER names this vCPU.
fn own_redist(redist: u64, size: u64, mpidr: u64) -> Result<u64, Msg> {
    let packed = (mpidr >> 32 & 0xff) << 24 | mpidr & 0xff_ffff;
    let mut rd = redist;
    while rd + REDIST_STRIDE <= redist + size {
        let typer =
            read64(rd + 8).map_err(|esr| msg!("GICR_TYPER at {:#x} aborted ({esr:#x})", rd + 8))?;
        if typer >> 32 == packed {
            return Ok(rd);
        }
        rd += REDIST_STRIDE;
    }
    Err(msg!(
        "no redistributor in {redist:#x}+{size:#x} names MPIDR {mpidr:#x}"
    ))
}

/// Find the VM's GIC and this vCPU's place in it.
pub fn view(fdt: &Fdt<'_>) -> Result<View, Msg> {
    let gic = find(fdt).ok_or_else(|| msg!("no GIC node in the device tree"))?;
    let mpidr = mpidr();
    let rd = match gic {
        Gic::V3 {
            redist,
            redist_size,
            ..
        } => own_redist(redist, redist_size, mpidr)?,
        Gic::V2 { .. } => 0,
    };
    println!("probe: hostile GIC {gic:x?}, MPIDR {mpidr:#x}");
    Ok(View {
        gic,
        rd,
        mpidr,
        own: own_interrupts(fdt),
    })
}

/// `hostile_gic_writes` and `hostile_sgi`.
pub fn attack(v: &View) {
    report::outcome("hostile_gic_writes", writes(v));
    report::outcome("hostile_sgi", sgis(v));
}

/// `hostile_gic_observe`: nothing outside the VM's own interrupts is enabled, pending or active.
pub fn observe(v: &View) -> Result<(), Msg> {
    let own = &v.own;
    for n in 0..32u64 {
        for (name, base) in [
            ("enabled", ISENABLER),
            ("pending", ISPENDR),
            ("active", ISACTIVER),
        ] {
            let bits = rd(v.bitmap(base, n))? & !own[n as usize];
            if bits != 0 {
                return Err(msg!(
                    "INTIDs {}.. read {name} ({bits:#010x}) before the VM touched them: another VM's or the host's state",
                    32 * n
                ));
            }
        }
    }
    Ok(())
}

/// Everything written, then the words beyond GICD_TYPER read back.
fn writes(v: &View) -> Result<(), Msg> {
    let typer = rd(v.dist() + 4)?;
    let lines = gic_lines(typer);
    let cpus = ((typer >> 5) & 7) + 1;
    println!("probe: GICD_TYPER {typer:#x}: {lines} interrupt lines, {cpus} CPU interfaces");
    // 1. All ones everywhere.
    let frames: [(u64, u64); 2] = match v.gic {
        Gic::V2 {
            dist,
            cpu,
            cpu_size,
        } => [(dist, 0x1000), (cpu, cpu_size)],
        Gic::V3 {
            dist, dist_size, ..
        } => [(dist, dist_size), (v.rd, REDIST_STRIDE)],
    };
    let (mut refused, mut words) = (0, 0);
    for (base, size) in frames {
        for off in (0..size).step_by(4) {
            words += 1;
            if write32(base + off, u32::MAX).is_err() {
                refused += 1;
            }
        }
    }
    println!("probe: wrote all ones to {words} GIC words, {refused} refused");
    // 2. Every INTID: group, enable, pending, active, priority, configuration, target.
    wr(v.dist(), 3)?;
    for n in 0..32 {
        for base in [IGROUPR, ISENABLER, ISPENDR, ISACTIVER] {
            wr(v.bitmap(base, n), u32::MAX)?;
        }
    }
    for n in 0..255 {
        wr(v.word(IPRIORITYR, n, 8), u32::MAX)?;
    }
    for n in 0..64 {
        wr(v.word(ICFGR, n, 2), 0xaaaa_aaaa)?;
    }
    // Other CPUs: every CPU interface (GICv2), other affinities and "any" (GICv3).
    const ROUTES: [u64; 7] = [1, 2, 3, 0x100, 0x1_0000, 0x1_0000_0000, 1 << 31];
    match v.gic {
        Gic::V2 { dist, .. } => {
            for n in 8..255 {
                wr(dist + ITARGETSR + 4 * n, u32::MAX)?;
            }
        }
        Gic::V3 { dist, .. } => {
            for (i, intid) in (32..1020u64).enumerate() {
                let a = dist + IROUTER + 8 * intid;
                write64(a, ROUTES[i % ROUTES.len()])
                    .map_err(|esr| msg!("writing IROUTER at {a:#x} aborted ({esr:#x})"))?;
            }
        }
    }
    // 3. Read back: RAZ beyond the advertised lines; GICv2 targets only the VM's CPU interfaces.
    let mut bad = 0u32;
    let mut first: Option<Msg> = None;
    let mut check = |ok: bool, what: Msg| {
        if !ok {
            bad += 1;
            first.get_or_insert(what);
        }
    };
    let lines = u64::from(lines);
    for n in lines / 32..32 {
        for (name, base) in [
            ("IGROUPR", IGROUPR),
            ("ISENABLER", ISENABLER),
            ("ISPENDR", ISPENDR),
            ("ISACTIVER", ISACTIVER),
        ] {
            let x = rd(v.bitmap(base, n))?;
            check(x == 0, msg!("{name}{n} (INTIDs {}..) reads {x:#x} beyond the {lines} lines GICD_TYPER advertises", 32 * n));
        }
    }
    for n in lines / 4..255 {
        let x = rd(v.word(IPRIORITYR, n, 8))?;
        check(
            x == 0,
            msg!("IPRIORITYR{n} reads {x:#x} beyond {lines} lines"),
        );
    }
    for n in lines / 16..64 {
        let x = rd(v.word(ICFGR, n, 2))?;
        check(x == 0, msg!("ICFGR{n} reads {x:#x} beyond {lines} lines"));
    }
    match v.gic {
        Gic::V2 { dist, .. } => {
            let mine = (1u32 << cpus) - 1;
            let mine = mine | mine << 8 | mine << 16 | mine << 24;
            for n in 8..255 {
                let x = rd(dist + ITARGETSR + 4 * n)?;
                if 4 * n >= lines {
                    check(
                        x == 0,
                        msg!("ITARGETSR{n} reads {x:#x} beyond {lines} lines"),
                    );
                } else {
                    check(x & !mine == 0, msg!("ITARGETSR{n} reads {x:#x}: CPU interfaces the VM does not have ({cpus})"));
                }
            }
        }
        Gic::V3 { dist, .. } => {
            for intid in lines..1020 {
                let a = dist + IROUTER + 8 * intid;
                let x = read64(a)
                    .map_err(|esr| msg!("reading IROUTER at {a:#x} aborted ({esr:#x})"))?;
                check(
                    x == 0,
                    msg!("GICD_IROUTER{intid} reads {x:#x} beyond {lines} lines"),
                );
            }
        }
    }
    // 4. Leave nothing pending, active or enabled behind.
    for n in 0..32 {
        for base in [ICENABLER, ICPENDR, ICACTIVER] {
            wr(v.bitmap(base, n), u32::MAX)?;
        }
    }
    match first {
        Some(m) => Err(msg!("{bad} registers: {m}")),
        None => Ok(()),
    }
}

/// SGIs naming CPUs outside the VM.
fn sgis(v: &View) -> Result<(), Msg> {
    v.clear_sgis()?;
    let p = v.pending_sgis()?;
    if p != 0 {
        return Err(msg!("SGIs {p:#06x} stay pending after ICPENDR0/CPENDSGIR"));
    }
    let (aff0, aff1, aff2, aff3) = (
        v.mpidr as u8,
        (v.mpidr >> 8) as u8,
        (v.mpidr >> 16) as u8,
        (v.mpidr >> 32) as u8,
    );
    let (rs, bit) = (aff0 >> 4, 1u16 << (aff0 & 0xf));
    // The positive control: an SGI to itself becomes pending while SGIs are disabled.
    match v.gic {
        Gic::V2 { dist, .. } => wr(dist + SGIR, 2 << 24 | 5)?,
        Gic::V3 { .. } => write_sgi(SgiReg::Sgi1r, sgi1r(5, aff3, aff2, aff1, rs, bit, false))
            .map_err(|esr| msg!("ICC_SGI1R_EL1 to itself: exception {esr:#x}"))?,
    }
    let p = v.pending_sgis()?;
    if p != 1 << 5 {
        return Err(msg!(
            "SGI 5 sent to itself left pending {p:#06x}, not 0x0020: this check cannot see SGIs"
        ));
    }
    v.clear_sgis()?;
    // GICD_SGIR (GICv2): every CPU interface but its own, and "all but self".
    if let Gic::V2 { dist, .. } = v.gic {
        let own = rd(dist + ITARGETSR)? & 0xff;
        for intid in 0..16 {
            for value in [(0xff & !own) << 16 | intid, 1 << 24 | intid] {
                wr(dist + SGIR, value)?;
                let p = v.pending_sgis()?;
                if p != 0 {
                    return Err(msg!(
                        "GICD_SGIR {value:#x} naming other CPUs left SGIs {p:#06x} pending here"
                    ));
                }
            }
        }
    }
    // The GICv3 SGI registers (trapped to el2visor; without a GICv3 CPU interface, UNDEFINED).
    let mut undefined = [0u32; 3];
    for (i, reg) in [SgiReg::Sgi1r, SgiReg::Asgi1r, SgiReg::Sgi0r]
        .into_iter()
        .enumerate()
    {
        for intid in 0..16 {
            let mut values = [0u64; 24];
            let mut n = 0;
            let mut push = |x: u64| {
                values[n] = x;
                n += 1;
            };
            push(sgi1r(intid, aff3, aff2, aff1, rs, !bit, false));
            for r in (0..16).filter(|&r| r != rs) {
                push(sgi1r(intid, aff3, aff2, aff1, r, 0xffff, false));
            }
            push(sgi1r(intid, aff3, aff2, aff1 ^ 1, rs, 0xffff, false));
            push(sgi1r(intid, aff3, aff2 ^ 1, aff1, rs, 0xffff, false));
            push(sgi1r(intid, aff3 ^ 1, aff2, aff1, rs, 0xffff, false));
            push(sgi1r(intid, 0xff, 0xff, 0xff, 0xf, 0xffff, false));
            push(sgi1r(intid, 0, 0, 0, 0, 0, true));
            for &value in &values[..n] {
                if write_sgi(reg, value).is_err() {
                    undefined[i] += 1;
                }
                let p = v.pending_sgis()?;
                if p != 0 {
                    return Err(msg!(
                        "{reg:?} {value:#x} naming other CPUs left SGIs {p:#06x} pending here"
                    ));
                }
            }
        }
    }
    println!(
        "probe: SGI register writes taking an exception: ICC_SGI1R {}, ICC_ASGI1R {}, ICC_SGI0R {}",
        undefined[0], undefined[1], undefined[2]
    );
    Ok(())
}
