//! Turning on el2visor's own EL2 stage-1 MMU: an identity map where the image's text is RX,
//! its rodata RO, the rest of RAM RW and execute-never, everything that is not RAM
//! Device-nGnRE and execute-never, and the page below each CPU's stack unmapped (a guard). Tables come from a static pool (no frame allocator yet).

use crate::arch::boot::{self as arch_boot, ImageLayout};
use crate::arch::{cache, sysreg};
use crate::mm::addr::{PaRange, PAGE_SIZE};
use crate::mm::el2_tables::{self, regs, El2Mem, El2Tables};
use crate::mm::frames::pages::{identity, BootPool};

/// Pages in the boot table pool (the builder's tests show the QEMU virt and Pi 4 layouts fit).
const POOL_PAGES: usize = 32;
/// How much of the address space is mapped as Device: 1 TiB, or less on a smaller PA range.
const DEVICE_WINDOW: u64 = 1 << 40;

#[repr(C, align(4096))]
struct Pool([u8; POOL_PAGES * PAGE_SIZE as usize]);

static mut POOL: Pool = Pool([0; POOL_PAGES * PAGE_SIZE as usize]);

/// The register values that turn the MMU on, shared with secondaries (entry.S loads them).
#[derive(Clone, Copy, Debug)]
pub struct MmuRegs {
    pub mair: u64,
    pub tcr: u64,
    pub ttbr0: u64,
    pub sctlr: u64,
}

impl MmuRegs {
    /// In the order `EL2_MMU_BOOT` holds them.
    pub fn as_array(&self) -> [u64; 4] {
        [self.mair, self.tcr, self.ttbr0, self.sctlr]
    }
}

/// What of `ram` [`enable`] maps as RAM: each range widened to whole pages, below the EL2
/// translation's VA limit (the identity map cannot reach above it).
pub fn mapped_ram(ram: &[PaRange]) -> alloc::vec::Vec<PaRange> {
    let pa_limit = 1u64 << regs::va_bits((sysreg::id_aa64mmfr0_el1() & 0xf) as u8);
    ram.iter()
        .filter(|r| r.start.raw() < pa_limit)
        .map(|r| {
            let start = r.start.align_down(PAGE_SIZE);
            let end = r.end().min(pa_limit).next_multiple_of(PAGE_SIZE);
            PaRange::new(start.raw(), end - start.raw())
        })
        .collect()
}

/// Build the map and turn the MMU and caches on for this CPU. `ram` is the DT's RAM; `dtb` is
/// the device tree, which el2visor wrote with the MMU off (its copy, or NOPs taken out);
/// `relocated`: this is the image `relocate::to_top` moved, with the device tree.
pub fn enable(image: &ImageLayout, ram: &[PaRange], dtb: PaRange, relocated: bool) -> Result<(MmuRegs, El2Tables), el2_tables::El2MapError> {
    let parange = (sysreg::id_aa64mmfr0_el1() & 0xf) as u8;
    let pa_limit = 1u64 << regs::va_bits(parange);
    let mut regions = alloc::vec::Vec::with_capacity(ram.len() + 3);
    regions.push((PaRange::new(0, DEVICE_WINDOW.min(pa_limit)), El2Mem::Device));
    for r in mapped_ram(ram) {
        regions.push((r, El2Mem::ReadWrite));
    }
    regions.push((PaRange::new(image.start, image.text_end - image.start), El2Mem::Code));
    regions.push((PaRange::new(image.text_end, image.rodata_end - image.text_end), El2Mem::ReadOnly));
    let (slot, guard) = (arch_boot::STACK_SIZE as u64, arch_boot::STACK_GUARD as u64);
    regions.extend(el2_tables::stack_guards(arch_boot::stacks_start(), slot, guard, crate::percpu::MAX_CPUS));

    let pool_start = core::ptr::addr_of_mut!(POOL) as u64;
    let pool_len = POOL_PAGES * PAGE_SIZE as usize;
    // SAFETY: POOL is used only here, once, before the MMU is on; identity() is right with the
    // MMU off and stays right after (the map is an identity map).
    let mut pages = unsafe { BootPool::new(PaRange::new(pool_start, pool_len as u64), identity) };
    let tables = el2_tables::build(&regions, parange, &mut pages)?;

    let mmu = MmuRegs {
        mair: regs::mair_el2(),
        tcr: regs::tcr_el2(parange),
        ttbr0: tables.ttbr0_el2(),
        sctlr: regs::SCTLR_EL2_MMU_ON,
    };
    // Everything so far was written past the caches (MMU off); drop any stale lines the loader
    // left for the image (tables, data, BSS and stacks included) and the device tree before
    // caching turns on. After the move to the top of RAM (`relocated`) that was done for both,
    // right before they were written there (`relocate::to_top`), and the MMU has been off
    // since: nothing can have cached them again (and each line is a helper call under QEMU's
    // TCG: 65 000 of them for a 4 MiB image, whose slot for it now holds the moved device tree).
    if !relocated {
        cache::invalidate_range(image.start, (image.end - image.start) as usize);
        cache::invalidate_range(dtb.start.raw(), dtb.size as usize);
    }
    // SAFETY: the identity map covers the image (text executable), its data and stacks, RAM and
    // the devices el2visor touches, with the same addresses as now; TLBs are invalidated first.
    unsafe { turn_on(&mmu) };
    Ok((mmu, tables))
}

/// # Safety
/// `mmu.ttbr0` must identity-map everything the running code uses.
unsafe fn turn_on(mmu: &MmuRegs) {
    // SAFETY: the caller's contract; the MMU is off while the registers are set.
    unsafe {
        sysreg::set_mair_el2(mmu.mair);
        sysreg::set_tcr_el2(mmu.tcr);
        sysreg::set_ttbr0_el2(mmu.ttbr0);
    }
    sysreg::isb();
    sysreg::tlbi_alle2();
    // SAFETY: as above: the new regime maps every address the same way.
    unsafe { sysreg::set_sctlr_el2(mmu.sctlr) };
    sysreg::isb();
}
