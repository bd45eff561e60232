//! The probe's own stage-1 translation: identity map of RAM (Normal-NC), the console UART page
//! (Device), the passthrough device page (Normal WB on purpose), the unowned page the abort
//! probe touches (Device), a write-back alias of one RAM page, and the GIC frames and RTC of the
//! virtual GIC probes (Device); at EL0, the AArch32 probe's code page and the distributor's first
//! page; then MMU, D- and I-cache on.

use crate::sysreg;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use probe_guest::dt::Platform;
use probe_guest::msg::Msg;
use probe_guest::pagetable::{El0Access, Mapper, MemType, Table, PAGE_SIZE, PROBE_MAIR, VA_BITS};

/// Tables available: a handful per RAM region and device page is plenty.
const POOL_TABLES: usize = 32;

struct Pool(UnsafeCell<[Table; POOL_TABLES]>);
// SAFETY: the probe runs on one CPU with interrupts masked; only `enable` touches the pool.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([const { Table::EMPTY }; POOL_TABLES]));

/// A page of RAM the attribute probes translate.
#[repr(C, align(4096))]
pub struct RamTarget(pub [u8; 4096]);
/// See [`RamTarget`].
pub static RAM_TARGET: RamTarget = RamTarget([0; 4096]);

/// A second VA of [`RAM_TARGET`]'s page, mapped Normal write-back (MAIR index 2) instead of the
/// identity map's Normal-NC, far above RAM and every device. Only ever translated (`AT`), never
/// accessed, so the two attributes never meet in the caches.
pub const RAM_TARGET_WB_ALIAS: u64 = 0x7f00_0000_0000;

/// Where AArch32 EL0 sees the page of T32 code the aa32_it_block probe runs (`probe_aa32_code`,
/// asm/aa32.S; read-only, executable at EL0 only), and the GIC distributor's first page
/// (Device-nGnRE, read-write at EL0) for its emulated access; 0 where there is none. AArch32
/// addresses are 32 bits wide, so both are the first free pages below 4 GiB, from the top down
/// ([`map_el0_below_4g`]).
pub static AA32_CODE_EL0: AtomicU64 = AtomicU64::new(0);
/// See [`AA32_CODE_EL0`].
pub static GICD_EL0: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static probe_aa32_code: u8;
}

/// The physical page of `probe_aa32_code`.
fn aa32_code_page() -> u64 {
    // Only the symbol's address is taken (no read).
    core::ptr::addr_of!(probe_aa32_code) as u64
}

extern "C" {
    static _start: u8;
    static __image_end: u8;
}

const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
const SCTLR_WXN: u64 = 1 << 19;

/// TCR_EL1: T0SZ for 48-bit VA, walks Normal-NC (the tables are written non-cacheable), TG0 4 KiB,
/// TTBR1 walks disabled (EPD1) with TG1 4 KiB, IPS from the CPU's PARange (at most 48 bits).
pub fn tcr_value(pa_range: u64) -> u64 {
    let t0sz = 64 - u64::from(VA_BITS);
    let ips = pa_range.min(5);
    t0sz | (0b11 << 12) | (1 << 23) | (t0sz << 16) | (0b10 << 30) | (ips << 32)
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

fn page_up(a: u64) -> u64 {
    (a + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// The image's run-time range (start, end) including .bss and stacks.
pub fn image_range() -> (u64, u64) {
    // Only the addresses of the linker symbols are taken (no read).
    (
        core::ptr::addr_of!(_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}

/// Map the page at `pa` for EL0 at the highest VA below 4 GiB (in 2 MiB steps, from 4 GiB - 2 MiB
/// down to 16 MiB) that nothing maps yet; returns the VA.
fn map_el0_below_4g(m: &mut Mapper, pa: u64, ty: MemType, access: El0Access) -> Result<u64, Msg> {
    const STEP: u64 = 2 << 20;
    let mut va = (1 << 32) - STEP;
    while va >= 16 << 20 {
        if m.map_el0(va, pa, PAGE_SIZE, ty, access).is_ok() {
            return Ok(va);
        }
        va -= STEP;
    }
    Err(probe_guest::msg!("no free page below 4 GiB to map {pa:#x} at EL0"))
}

/// Build the tables and turn the MMU on. Must run with the MMU off, once.
pub fn enable(p: &Platform) -> Result<usize, Msg> {
    let pool_pa = POOL.0.get() as u64;
    if !pool_pa.is_multiple_of(PAGE_SIZE) {
        return Err(probe_guest::msg!(
            "page-table pool at {pool_pa:#x} is not 4 KiB aligned: the image was loaded at a base that is not"
        ));
    }
    // SAFETY: single CPU, called once before any other use of the pool; identity (MMU off), so
    // the pool's address is its physical address.
    let pool = unsafe { &mut *POOL.0.get() };
    let mut m = Mapper::new(pool, pool_pa);
    for r in p.ram() {
        let (start, end) = (page_up(r.base), page_down(r.base + r.size));
        if end > start {
            m.map(start, start, end - start, MemType::NormalNc, true)
                .map_err(|e| probe_guest::msg!("mapping RAM {start:#x}..{end:#x}: {e}"))?;
        }
    }
    if let Some(uart) = p.uart {
        let page = page_down(uart);
        m.map(page, page, PAGE_SIZE, MemType::Device, false)
            .map_err(|e| probe_guest::msg!("mapping the UART page {page:#x}: {e}"))?;
    }
    if let Some(dev) = p.passthrough {
        let page = page_down(dev.region.base);
        if Some(page) != p.uart.map(page_down) {
            m.map(page, page, PAGE_SIZE, MemType::NormalWb, false)
                .map_err(|e| probe_guest::msg!("mapping the passthrough page {page:#x}: {e}"))?;
        }
    }
    let target = core::ptr::addr_of!(RAM_TARGET) as u64;
    m.map(RAM_TARGET_WB_ALIAS, target, PAGE_SIZE, MemType::NormalWb, false)
        .map_err(|e| probe_guest::msg!("mapping the write-back alias of {target:#x}: {e}"))?;
    if let Some(a) = p.unowned {
        // Device-nGnRE: only the abort probe's own load and store ever touch it.
        m.map(a, a, PAGE_SIZE, MemType::Device, false)
            .map_err(|e| probe_guest::msg!("mapping the unowned page {a:#x}: {e}"))?;
    }
    if let Some(f) = p.fw_cfg {
        // Device-nGnRE: only the fw_cfg_dma probe's store touches it.
        let page = page_down(f.base);
        m.map(page, page, PAGE_SIZE, MemType::Device, false)
            .map_err(|e| probe_guest::msg!("mapping the fw_cfg page {page:#x}: {e}"))?;
    }
    if let Some(its) = p.its {
        // The ITS control frame (64 KiB) the its_garbage probe writes and the translation frame
        // (64 KiB) the snapshot_its probe writes GITS_TRANSLATER in (Device-nGnRE).
        m.map(its, its, 0x2_0000, MemType::Device, false)
            .map_err(|e| probe_guest::msg!("mapping the ITS frames at {its:#x}: {e}"))?;
    }
    // The GIC frames and the RTC the virtual GIC probes program (Device-nGnRE).
    for r in probe_guest::dt::device_ranges(p.gic, p.rtc).into_iter().flatten() {
        let (start, end) = (page_down(r.base), page_up(r.base + r.size));
        m.map(start, start, end - start, MemType::Device, false)
            .map_err(|e| probe_guest::msg!("mapping the device range {start:#x}..{end:#x}: {e}"))?;
    }
    // Last, so that they take pages nothing else maps.
    let code = map_el0_below_4g(&mut m, aa32_code_page(), MemType::NormalNc, El0Access::ReadExec)?;
    AA32_CODE_EL0.store(code, Ordering::Relaxed);
    if let Some(g) = p.gic {
        let gicd = map_el0_below_4g(&mut m, g.dist(), MemType::Device, El0Access::ReadWrite)?;
        GICD_EL0.store(gicd, Ordering::Relaxed);
    }
    let used = m.tables_used();
    let root = m.root_pa();

    // Drop any cache line of the image a hypervisor or speculation may hold: everything so far
    // was written with the MMU off (straight to memory) and is about to be read cacheable.
    let (start, end) = image_range();
    // SAFETY: the MMU has been off since entry, so nothing of the image is only in the cache.
    unsafe { sysreg::dcache_invalidate(start, end) };

    // SAFETY: MMU off, so these only prepare translation; the tables map the running image (RAM),
    // its stack and the console. SCTLR then turns translation on with all of them in place.
    unsafe {
        sysreg::set_mair(PROBE_MAIR);
        sysreg::set_tcr(tcr_value(sysreg::pa_range()));
        sysreg::set_ttbr0(root);
        sysreg::isb();
        sysreg::tlbi_vmalle1();
        let sctlr = (sysreg::sctlr() | SCTLR_M | SCTLR_C | SCTLR_I) & !(SCTLR_A | SCTLR_WXN);
        sysreg::set_sctlr(sctlr);
        sysreg::isb();
    }
    Ok(used)
}
