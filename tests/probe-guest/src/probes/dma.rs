//! `dma` (with `dma` in the bootargs): DMA from a real PCI device, QEMU's `edu`, which the VM owns
//! through the passed-through PCI host bridge. With its MMU off (every access Device, no
//! interrupts needed: the probe polls), the probe finds edu on the ECAM's first bus, gives BAR0
//! an address in the bridge's 32-bit window, enables memory decoding and bus mastering, and:
//!
//! - `dma_own_ram`: a pattern goes from its RAM into edu's buffer and back into another RAM
//!   buffer; it must arrive intact;
//! - `dma_outside_ram`: edu writes the pattern to an address outside the VM's RAM
//!   (`dma_target=<addr>` from the bootargs, else the 4 KiB page just below its RAM), then, its
//!   buffer cleared, reads that address back and hands the result to RAM. Behind an SMMU el2visor
//!   programs, both transfers fault (el2visor logs them), so the pattern must not come back; it
//!   coming back means the write reached memory the VM does not own;
//! - `dma_after_fault`: the device still does DMA into the VM's RAM afterwards.
//!
//! Then SYSTEM_OFF: el2visor's STATS line after it shows el2visor survived.

use crate::report;
use probe_guest::dt::Platform;
use probe_guest::msg;
use probe_guest::msg::Msg;
use probe_guest::pci::{self, Ecam};

const WORDS: usize = 512; // one 4 KiB buffer

#[repr(C, align(4096))]
struct Buffers([[u64; WORDS]; 2]);

static mut BUFS: Buffers = Buffers([[0; WORDS]; 2]);

fn buf(i: usize) -> u64 {
    // SAFETY: only the address is taken; accesses go through `rd`/`wr`.
    (unsafe { core::ptr::addr_of!(BUFS.0[i]) }) as u64
}

fn rd32(a: u64) -> u32 {
    // SAFETY: a config-space or BAR address the DT gives the VM, or the probe's own buffer.
    unsafe { core::ptr::read_volatile(a as *const u32) }
}
fn wr32(a: u64, v: u32) {
    // SAFETY: as `rd32`.
    unsafe { core::ptr::write_volatile(a as *mut u32, v) }
}
fn rd64(a: u64) -> u64 {
    // SAFETY: as `rd32`.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}
fn wr64(a: u64, v: u64) {
    // SAFETY: as `rd32`.
    unsafe { core::ptr::write_volatile(a as *mut u64, v) }
}

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn pattern(i: usize) -> u64 {
    0xd11a_0000_0000_0000 | (i as u64) << 16 | 0xed
}

/// One edu DMA of `len` bytes, polled to completion (edu takes 100 ms of virtual time).
fn dma(bar: u64, src: u64, dst: u64, len: u64, to_ram: bool) -> Result<(), Msg> {
    wr64(bar + pci::EDU_DMA_SRC, src);
    wr64(bar + pci::EDU_DMA_DST, dst);
    wr64(bar + pci::EDU_DMA_COUNT, len);
    wr64(bar + pci::EDU_DMA_CMD, pci::edu_dma_cmd(to_ram));
    let deadline = cntvct() + 5 * crate::sysreg::cntfrq();
    while rd64(bar + pci::EDU_DMA_CMD) & 1 != 0 {
        if cntvct() > deadline {
            return Err(msg!("edu's DMA {src:#x} -> {dst:#x} did not complete in 5 s"));
        }
    }
    Ok(())
}

fn fill(i: usize, f: impl Fn(usize) -> u64) {
    for w in 0..WORDS {
        wr64(buf(i) + 8 * w as u64, f(w));
    }
}

fn matches(i: usize, f: impl Fn(usize) -> u64) -> Option<usize> {
    (0..WORDS).find(|&w| rd64(buf(i) + 8 * w as u64) != f(w))
}

/// Find edu on the first bus and set it up: its BAR0 (a CPU address) and requester ID.
fn setup(e: &Ecam) -> Result<(u64, u16), Msg> {
    let (pci_base, cpu_base, size) = e.mem.ok_or(msg!("the PCI bridge has no 32-bit memory window"))?;
    for dev in 0..32u8 {
        let cfg = e.base + e.cfg(e.bus, dev, 0, 0);
        let id = rd32(cfg + pci::CFG_ID);
        if id != (u32::from(pci::EDU_DEVICE) << 16 | u32::from(pci::EDU_VENDOR)) {
            continue;
        }
        wr32(cfg + pci::CFG_BAR0, 0xffff_ffff);
        let bar_len = pci::bar_size(rd32(cfg + pci::CFG_BAR0)).ok_or(msg!("edu's BAR0 is not a memory BAR"))?;
        // The top of the window, aligned to the BAR's size: away from what firmware may use.
        let at = (pci_base + size - bar_len) & !(bar_len - 1);
        if at < pci_base {
            return Err(msg!("edu's BAR0 ({bar_len:#x} bytes) does not fit the window"));
        }
        wr32(cfg + pci::CFG_BAR0, at as u32);
        let cmd = rd32(cfg + pci::CFG_COMMAND) as u16 | pci::CMD_MEMORY | pci::CMD_MASTER;
        wr32(cfg + pci::CFG_COMMAND, u32::from(cmd));
        let bar = cpu_base + (at - pci_base);
        println!(
            "probe: edu at {:02x}:{:02x}.0 (requester ID {:#x}), BAR0 {bar:#x}, ident {:#x}",
            e.bus,
            dev,
            pci::rid(e.bus, dev, 0),
            rd32(bar + pci::EDU_IDENT)
        );
        wr32(bar + pci::EDU_LIVENESS, 0x1234_5678);
        if rd32(bar + pci::EDU_LIVENESS) != !0x1234_5678 {
            return Err(msg!("edu's liveness register does not answer at BAR0 {bar:#x}"));
        }
        return Ok((bar, pci::rid(e.bus, dev, 0)));
    }
    Err(msg!("no edu device (1234:11e8) on bus {} (QEMU: -device edu,dma_mask=0xffffffffffffffff)", e.bus))
}

fn own_ram(bar: u64) -> Result<(), Msg> {
    fill(0, pattern);
    fill(1, |_| 0);
    dma(bar, buf(0), pci::EDU_BUF, pci::EDU_BUF_SIZE, false)?;
    dma(bar, pci::EDU_BUF, buf(1), pci::EDU_BUF_SIZE, true)?;
    match matches(1, pattern) {
        None => Ok(()),
        Some(w) => Err(msg!("word {w} of the DMA'd buffer at {:#x} is {:#x}, expected {:#x}", buf(1), rd64(buf(1) + 8 * w as u64), pattern(w))),
    }
}

fn outside(bar: u64, target: u64) -> Result<(), Msg> {
    fill(0, pattern);
    dma(bar, buf(0), pci::EDU_BUF, pci::EDU_BUF_SIZE, false)?;
    // The attack: the pattern over someone else's memory.
    dma(bar, pci::EDU_BUF, target, pci::EDU_BUF_SIZE, true)?;
    // Clear edu's buffer, read the target back through it, hand it to RAM.
    fill(0, |_| 0);
    dma(bar, buf(0), pci::EDU_BUF, pci::EDU_BUF_SIZE, false)?;
    dma(bar, target, pci::EDU_BUF, pci::EDU_BUF_SIZE, false)?;
    fill(1, |_| 0x5a5a_5a5a_5a5a_5a5a);
    dma(bar, pci::EDU_BUF, buf(1), pci::EDU_BUF_SIZE, true)?;
    match matches(1, pattern) {
        Some(_) => Ok(()),
        None => Err(msg!("the pattern written by DMA to {target:#x} (outside the VM's RAM) read back: the write reached memory the VM does not own")),
    }
}

/// Never returns: reports and powers off.
pub fn run(p: &Platform, fdt: &fdt::Fdt<'_>, bootargs: Option<&str>) -> ! {
    let Some(e) = pci::ecam(fdt) else {
        report::fail("dma_own_ram", "no pci-host-ecam-generic bridge in the DT");
        report::finish();
    };
    println!("probe: PCI ECAM {:#x}+{:#x}, buses from {}, 32-bit window {:x?}", e.base, e.size, e.bus, e.mem);
    let (bar, _rid) = match setup(&e) {
        Ok(x) => x,
        Err(m) => {
            report::fail("dma_own_ram", m);
            report::finish();
        }
    };
    report::outcome("dma_own_ram", own_ram(bar));
    let below = p.ram().iter().map(|r| r.base).min().unwrap_or(0).saturating_sub(pci::EDU_BUF_SIZE);
    let target = pci::arg_u64(bootargs, "dma_target").unwrap_or(below);
    println!("probe: DMA target outside RAM {target:#x}");
    report::outcome("dma_outside_ram", outside(bar, target));
    report::outcome("dma_after_fault", own_ram(bar));
    report::finish()
}
