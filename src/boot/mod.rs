//! The boot sequence of the primary CPU and the secondaries: find the console and the machine in
//! the device tree, refuse to run anywhere but EL2, turn on the EL2 MMU, set up memory, start
//! the other CPUs, and hand over to the VMs.

mod guest;
mod mmu;
pub mod smp;

use alloc::vec::Vec;

use crate::arch::{boot as arch_boot, cpu, psci, sysreg};
use crate::mm::addr::PaRange;
use crate::platform::{early::EarlyInfo, Platform};
use crate::vcpu::{lifecycle, run};
use crate::{cmdline, logging, println};

/// el2visor's version, for the banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Known PL011 consoles, tried in turn when the device tree is unusable so that the error can
/// still be seen: QEMU virt, then BCM2711 (Raspberry Pi 4 and QEMU raspi4b).
const FALLBACK_CONSOLES: [usize; 2] = [0x0900_0000, 0xfe20_1000];

/// Print on every fallback console, surviving addresses where nothing answers.
fn shout_everywhere(args: core::fmt::Arguments<'_>) {
    use crate::arch::exception::PROBING;
    use core::sync::atomic::Ordering;
    PROBING.store(true, Ordering::Relaxed);
    for base in FALLBACK_CONSOLES {
        logging::set_console(base);
        logging::print_line(args);
    }
    // None of them is known to exist: later output goes nowhere rather than to a guess.
    logging::set_console(0);
    PROBING.store(false, Ordering::Relaxed);
}

/// The device tree blob at `dtb_pa`, as far as its header vouches for it.
fn dtb_slice(dtb_pa: usize) -> Result<&'static [u8], &'static str> {
    if dtb_pa == 0 || !dtb_pa.is_multiple_of(8) {
        return Err("x0 is 0 or not 8-byte aligned, so there is no device tree");
    }
    // SAFETY: the boot protocol says x0 points at the DTB; its fixed header is 40 bytes.
    let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, 40) };
    let size = crate::platform::dtb_size(header).map_err(|_| "not a flattened device tree (bad header)")?;
    // SAFETY: the header vouches for `size` bytes, at most the boot protocol's 2 MiB.
    Ok(unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, size) })
}

/// One line saying why el2visor stops here: on the DT's console once it is known, else on every
/// fallback console (only at EL2, where a stray access to a missing UART is survivable).
fn cannot_boot(el: u8, args: core::fmt::Arguments<'_>) -> ! {
    if logging::console_base() != 0 {
        println!("el2visor: cannot boot: {args}; parked");
        logging::flush();
    } else if el == 2 {
        shout_everywhere(format_args!("el2visor: cannot boot: {args}; parked"));
    }
    cpu::park()
}

/// Primary CPU entry: never returns.
pub fn primary(dtb_pa: usize, el: u8) -> ! {
    crate::fatal::install();
    smp::init_stacks();
    let dtb = match dtb_slice(dtb_pa) {
        Ok(d) => d,
        Err(why) => cannot_boot(el, format_args!("device tree at {dtb_pa:#x}: {why}")),
    };
    // The heap's static arena serves boot allocations; it needs no lock while one CPU runs.
    crate::mm::heap::init();
    let dtb: &'static [u8] = match crate::platform::nops::without_nops(dtb) {
        Ok(Some(repacked)) => Vec::leak(repacked),
        Ok(None) => dtb,
        Err(e) => cannot_boot(el, format_args!("{e}")),
    };
    let early = match EarlyInfo::from_dtb(dtb) {
        Ok(e) => e,
        Err(e) => cannot_boot(el, format_args!("{e}")),
    };
    match early.console {
        Some(c) => logging::set_console(c.start.raw() as usize),
        None if el == 2 => shout_everywhere(format_args!(
            "el2visor: the device tree names no PL011 console (stdout-path, serial aliases); continuing without a console"
        )),
        None => {}
    }
    if el != 2 {
        println!(
            "el2visor: started at EL{el}, but el2visor must be entered at EL2 (QEMU: -M virt,virtualization=on; Pi: the stock armstub); parked"
        );
        cpu::park();
    }

    let image = arch_boot::image_layout();
    let (mmu, _el2_tables) = match mmu::enable(&image, early.memory()) {
        Ok(m) => m,
        Err(e) => cannot_boot(el, format_args!("EL2 page tables: {e}")),
    };
    crate::mm::heap::enable_locking();
    logging::enable_locking();

    let platform = match Platform::from_dtb(dtb) {
        Ok(p) => p,
        Err(e) => cannot_boot(el, format_args!("{e}")),
    };
    let (opts, problems) = cmdline::parse(platform.chosen.bootargs.as_deref().unwrap_or(""));
    logging::init_log(opts.loglevel.filter());
    for p in &problems {
        log::warn!("{p}");
    }

    psci::HOST_CONDUIT.call_once(|| platform.psci.as_ref().map(|x| smp::arch_conduit(x.conduit)));
    let fw = crate::trap::firmware::init();
    log::info!("host firmware: SMCCC_ARCH_FEATURES for ARCH_WORKAROUND_1/2/3: {:?}", fw.workarounds);
    let order = smp::cpu_order(&platform);
    smp::start_secondaries(&platform, &order, mmu.as_array());

    println!("el2visor {VERSION} at EL2 on {} cpus={}", platform.model, smp::online());
    let setting = match coherency_setting(&opts) {
        Ok(s) => s,
        Err(e) => {
            println!("el2visor: {e}; not starting a guest");
            lifecycle::power_off()
        }
    };
    println!("coherency: {}", crate::coherency::mode_name(setting.mode));

    init_gic(&platform);
    let src = guest::source(&platform);
    let hyp_reserved = init_frames(&platform, &image, dtb, &src);
    if smp::online_prefix() < smp::online() {
        log::warn!(
            "only CPUs 0..{} came up without a gap; the VM gets {} vCPUs (vCPU i runs on pCPU i)",
            smp::online_prefix(),
            smp::online_prefix()
        );
    }
    let mut vm = match guest::build(&platform, dtb, &opts, setting, &src, &hyp_reserved, smp::online_prefix()) {
        Ok(vm) => vm,
        Err(e) => {
            println!("el2visor: cannot start the guest: {e}");
            lifecycle::power_off()
        }
    };
    guest::attach_vgic(&platform, &mut vm);
    let vm = match crate::vm::table::insert(vm) {
        Ok(vm) => vm,
        Err(vm) => {
            println!("el2visor: cannot start the guest: no free VM slot for {}", vm.name);
            lifecycle::power_off()
        }
    };
    lifecycle::start(vm);
    log::debug!("VM {} ready; entering vCPU 0", vm.name);
    run::install();
    run::announce_vms();
    run::pcpu_main(0)
}

/// Take over the host GIC and set up this CPU's interface.
fn init_gic(p: &Platform) {
    use crate::gic::{hw, GicInfo, GicVersion};
    use crate::platform::GicKind;
    let Some(g) = &p.gic else {
        log::warn!("the device tree has no GIC: guests get no interrupts");
        return;
    };
    let info = match &g.kind {
        GicKind::V2 { dist, cpu, hyp, vcpu } => GicInfo {
            version: GicVersion::V2,
            dist: dist.start,
            cpu: Some(cpu.start),
            hyp: hyp.map(|r| r.start),
            vcpu: vcpu.map(|r| r.start),
            redist: Vec::new(),
            maintenance_intid: g.maintenance_intid.unwrap_or(crate::gic::MAINTENANCE_INTID),
        },
        GicKind::V3 { dist, redists, .. } => GicInfo {
            version: GicVersion::V3,
            dist: dist.start,
            cpu: None,
            hyp: None,
            vcpu: None,
            redist: redists.iter().map(|r| (r.start, r.size)).collect(),
            maintenance_intid: g.maintenance_intid.unwrap_or(crate::gic::MAINTENANCE_INTID),
        },
    };
    if let Err(e) = hw::init_host(&info).and_then(|_| hw::init_cpu()) {
        log::error!("GIC: {e}: guests get no interrupts");
    }
}

/// The coherency mode from `coherency=` and what the CPU has.
fn coherency_setting(opts: &cmdline::Options) -> Result<crate::coherency::Setting, crate::coherency::CoherencyError> {
    use crate::coherency::{has_fwb, resolve, Setting};
    let mode = resolve(opts.coherency, has_fwb(sysreg::id_aa64mmfr2_el1()))?;
    Ok(Setting { mode, fast_path: opts.fastpath })
}

/// RAM that is nobody else's: not the image, the DTB, reserved regions, boot modules, an initrd
/// or spin-table pages. When the VM takes host RAM directly (multiboot modules, a bundle),
/// el2visor keeps only a pool of it for its own frames; with the embedded guest, it manages all
/// of it and gives the VM frames. Returns what el2visor keeps for itself.
fn init_frames(p: &Platform, image: &arch_boot::ImageLayout, dtb: &[u8], src: &guest::Source) -> Vec<PaRange> {
    let mut hyp: Vec<PaRange> = p.reserved.iter().map(|r| r.range).collect();
    hyp.push(PaRange::new(image.start, image.end - image.start));
    hyp.push(PaRange::new(dtb.as_ptr() as u64, dtb.len() as u64));
    for c in p.enabled_cpus() {
        if let crate::platform::EnableMethod::SpinTable { release_addr } = c.enable {
            hyp.push(PaRange::new(release_addr.align_down(4096).raw(), 4096));
        }
    }
    let mut not_free = hyp.clone();
    not_free.extend(p.chosen.modules.iter().map(|m| m.range));
    not_free.extend(p.chosen.initrd);
    if let guest::Source::Bundle(b) = src {
        hyp.push(*b);
    }
    let free = crate::mm::layout::free_ranges(&p.memory, &not_free);
    let give: Vec<PaRange> = match src {
        guest::Source::Embedded => free,
        _ => {
            // The pool: the top of the highest free range big enough, 2 MiB aligned.
            let size = guest::HYP_POOL;
            let pool = free.iter().rev().find_map(|r| {
                let end = r.end() & !(crate::mm::addr::SIZE_2M - 1);
                let start = end.checked_sub(size)?;
                (start >= r.start.raw()).then(|| PaRange::new(start, size))
            });
            match pool {
                Some(pool) => {
                    hyp.push(pool);
                    alloc::vec![pool]
                }
                None => {
                    log::warn!("no {} MiB free RAM range for el2visor's pool", size >> 20);
                    Vec::new()
                }
            }
        }
    };
    for r in give {
        if let Err(e) = crate::mm::frames::global::add_range(r) {
            log::warn!("frame allocator: {e}");
        }
    }
    log::debug!(
        "memory: el2visor manages {} MiB of {} MiB RAM",
        (crate::mm::frames::global::free_frames() * 4096) >> 20,
        crate::mm::layout::total_size(&p.memory) >> 20
    );
    hyp
}

/// Secondary CPU entry, with its MMU on: report in, then run this CPU's vCPU when there is one.
pub fn secondary(index: usize) -> ! {
    smp::report_in(index);
    log::debug!("cpu {index} up at EL2 (MPIDR {:#x})", sysreg::mpidr_el1());
    run::pcpu_main(index)
}
