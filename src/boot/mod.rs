//! The boot sequence of the primary CPU and the secondaries: find the console and the machine in
//! the device tree, refuse to run anywhere but EL2, turn on the EL2 MMU, set up memory, start
//! the other CPUs, and hand over to the VMs.

mod bundle;
mod debug_uart;
mod domains;
mod guest;
mod memory;
mod mmu;
mod relocate;
pub mod smp;
mod stamp;

use stamp::At;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

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

/// The device tree blob at `dtb_pa`, as far as its header vouches for it. Mutable: its `FDT_NOP`
/// tokens are taken out in place (`platform::nops`). Only the boot CPU calls this, once before
/// el2visor moves itself and once after, and nothing else holds the blob in between.
fn dtb_slice_mut(dtb_pa: usize) -> Result<&'static mut [u8], &'static str> {
    if dtb_pa == 0 || !dtb_pa.is_multiple_of(8) {
        return Err("x0 is 0 or not 8-byte aligned, so there is no device tree");
    }
    // SAFETY: the boot protocol says x0 points at the DTB; its fixed header is 40 bytes.
    let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, 40) };
    let size = crate::platform::dtb_size(header).map_err(|_| "not a flattened device tree (bad header)")?;
    // SAFETY: the header vouches for `size` bytes, at most the boot protocol's 2 MiB, of RAM
    // the loader gave el2visor; the boot CPU is the only one running.
    Ok(unsafe { core::slice::from_raw_parts_mut(dtb_pa as *mut u8, size) })
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

/// Primary CPU entry: never returns. `relocated` says el2visor already moved itself to the top
/// of RAM (`relocate`) and runs there now.
pub fn primary(dtb_pa: usize, el: u8, relocated: bool) -> ! {
    stamp::mark(if relocated { At::Relocated } else { At::Entry });
    // First of all, before anything stores a pointer into the image: move it.
    let stayed = if relocated || el != 2 { None } else { Some(relocate::to_top(dtb_pa)) };
    crate::fatal::install();
    smp::init_stacks();
    let dtb = match dtb_slice_mut(dtb_pa) {
        Ok(d) => d,
        Err(why) => cannot_boot(el, format_args!("device tree at {dtb_pa:#x}: {why}")),
    };
    if let Err(e) = crate::platform::nops::strip_in_place(dtb) {
        cannot_boot(el, format_args!("{e}"));
    }
    let dtb: &'static [u8] = dtb;
    // The heap's static arena serves boot allocations; it needs no lock while one CPU runs.
    crate::mm::heap::init();
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
    let dtb_range = PaRange::new(dtb.as_ptr() as u64, dtb.len() as u64);
    let (mmu, _el2_tables) = match mmu::enable(&image, early.memory(), dtb_range, relocated) {
        Ok(m) => m,
        Err(e) => cannot_boot(el, format_args!("EL2 page tables: {e}")),
    };
    crate::mm::heap::enable_locking();
    logging::enable_locking();
    stamp::mark(At::Mmu);

    let mut platform = match Platform::from_dtb(dtb) {
        Ok(p) => p,
        Err(e) => cannot_boot(el, format_args!("{e}")),
    };
    stamp::mark(At::Platform);
    // RAM the EL2 map does not cover (past the early probe's first ranges, or above the EL2 VA
    // limit) is left out, and said so below, rather than handed out unmapped.
    let (ram, left_out) = crate::mm::layout::split_covered(&platform.memory, &mmu::mapped_ram(early.memory()));
    platform.memory = ram;
    let (opts, problems) = cmdline::parse(platform.chosen.bootargs.as_deref().unwrap_or(""));
    // Command-line problems (a typo in loglevel= among them) and RAM left out are shown whatever
    // loglevel= says; the level applies after them.
    logging::init_log(opts.loglevel.for_problems());
    for p in &problems {
        log::warn!("{p}");
    }
    if !left_out.is_empty() {
        log::warn!(
            "memory: {} MiB of the device tree's RAM left out, which el2visor's own map does not cover (it maps the first {} /memory ranges, below its VA limit): {:x?}",
            crate::mm::layout::total_size(&left_out) >> 20,
            crate::platform::early::EARLY_MEMORY_RANGES,
            left_out
        );
    }
    logging::init_log(opts.loglevel.filter());
    crate::vm::crash::set_policy(opts.on_crash, opts.crash_restarts);
    // `auto`: pages on QEMU virt (docs/architecture.md, section 5), but blocks with snapshots:
    // a lazy restore zaps and log-dirty write-protects the whole of RAM, work that grows with
    // the number of Stage-2 tables (512 times more with pages).
    let ram_pages = opts.s2_ram_pages.unwrap_or_else(|| platform.is_qemu_virt() && opts.snapshot.mem.is_none());
    crate::vm::instance::set_ram_pages(ram_pages);
    log::info!(
        "stage 2: guest RAM mapped with {} (s2_ram={})",
        if ram_pages { "4 KiB pages" } else { "blocks where aligned" },
        match opts.s2_ram_pages {
            None if ram_pages => "auto, on QEMU virt",
            None if opts.snapshot.mem.is_some() => "auto, with snapshot_mem=",
            None => "auto",
            Some(true) => "pages",
            Some(false) => "blocks",
        }
    );
    crate::trace::enable(opts.trace);
    if crate::trace::on(crate::cmdline::TraceClass::Psci) {
        crate::arch::hvc_fast::disable();
    }
    if let Some(why) = stayed {
        log::warn!("el2visor stays where the loader put it ({:#x}): {why}; the VM's RAM has holes", image.start);
    }

    psci::HOST_CONDUIT.call_once(|| platform.psci.as_ref().map(|x| smp::arch_conduit(x.conduit)));
    crate::trap::firmware::init();
    let order = smp::cpu_order(&platform);
    smp::start_secondaries(&platform, &order, mmu.as_array());
    let (fw, asked) = crate::trap::firmware::publish();
    log::info!(
        "host firmware: SMCCC_ARCH_FEATURES for ARCH_WORKAROUND_1/2/3: {:?} (the worst of {asked} CPUs); guests are told {:?}",
        fw.workarounds,
        crate::trap::smccc::guest_answers(&fw)
    );

    stamp::mark(At::Smp);
    println!("el2visor {VERSION} at EL2 on {} cpus={}", platform.model, smp::online());
    let setting = match coherency_setting(&opts) {
        Ok(s) => s,
        Err(e) => {
            println!("el2visor: {e}; not starting a guest");
            lifecycle::power_off()
        }
    };
    println!("coherency: {}", crate::coherency::mode_name(setting.mode));

    // A several-VMs guest bundle as the initrd stands for dom0less domain nodes.
    let platform = match bundle::adopt(platform) {
        Ok(p) => p,
        Err(e) => {
            println!("el2visor: cannot start the guests: {e}");
            lifecycle::power_off()
        }
    };
    init_gic(&platform);
    GIC_DECIDED.store(true, Ordering::Release);
    cpu::send_event();
    let mut platform = platform;
    // Modules the loader left overlapping are refused before anything is copied (the copies
    // never overlap); with dom0less domains, their modules and RAM are checked here too.
    {
        // el2visor's own block and a dom0-like VM need some of the RAM: at least this much.
        const RESERVE: u64 = 128 << 20;
        let total = crate::mm::layout::total_size(&platform.memory);
        let c = &platform.chosen;
        if let Err(e) = crate::vm::partition::check_boot(&c.domains, &c.modules, &platform.memory, total, RESERVE) {
            println!("el2visor: cannot start the guest: {e}");
            lifecycle::power_off()
        }
    }
    let mut src = guest::source(&platform);
    // Dom0less domains' RAM comes from el2visor's frames: its pool grows by that much.
    let domain_ram: u64 = platform.chosen.domains.iter().map(|d| d.memory.next_multiple_of(crate::mm::addr::SIZE_2M)).sum();
    let snapshot_ram = opts.snapshot.mem.map_or(0, |m| m.next_multiple_of(crate::mm::addr::SIZE_2M));
    let to_copy = src.to_copy(&platform);
    let defer = lazy_pristine(&platform, &opts, &src, to_copy.len());
    let mem = match memory::init(&platform, &image, dtb, src.identity(), memory::ToCopy { sources: &to_copy, defer: &defer, fwb: setting.mode == crate::coherency::Mode::Fwb }, domain_ram, snapshot_ram) {
        Ok(m) => m,
        Err(e) => {
            println!("el2visor: cannot start the guest: {e}");
            lifecycle::power_off()
        }
    };
    src.use_copies(&mut platform, &mem.copies);
    stamp::mark(At::Memory);
    if smp::online_prefix() < smp::online() {
        log::warn!(
            "only CPUs 0..{} came up without a gap; VMs get only these (vCPUs are pinned to pCPUs)",
            smp::online_prefix()
        );
    }
    // The SMMUs, before any VM: every stream aborts until its VM is built.
    let smmus = crate::vm::smmu::init(&platform);
    if !smmus.is_empty() {
        for (intid, edge) in crate::vm::smmu::interrupts(&platform) {
            if let Err(e) = crate::gic::hw::claim_device_irq_trigger(intid, 0, edge, crate::vm::smmu::poll) {
                log::warn!("SMMU interrupt {intid}: {e}; its faults are logged when a VM ends");
            }
        }
    }
    let vms = match start_vms(&platform, dtb, &opts, setting, &src, &mem) {
        Ok(vms) => vms,
        Err(e) => {
            println!("el2visor: cannot start the guest: {e}");
            lifecycle::power_off()
        }
    };
    stamp::mark(At::Vms);
    for &vm in &vms {
        lifecycle::start(vm);
        log::debug!("VM {} ready", vm.name);
    }
    // el2visor takes console input for the VMs' vpl011s unless the UART is passed through to the
    // dom0-like VM.
    let uart_passed_through = !matches!(src, guest::Source::Domains) && opts.console == cmdline::ConsoleOwner::Guest;
    if let (false, Some(c)) = (uart_passed_through, &platform.console) {
        crate::vcpu::console::start(c.base.raw() as usize, c.intid);
    }
    debug_uart::start(&platform, &opts, !uart_passed_through);
    run::install();
    stamp::mark(At::Run);
    stamp::report();
    let (used, arena) = crate::mm::heap::usage();
    log::debug!("heap: {} KiB of its {} KiB arena in use with the VMs built", used >> 10, arena >> 10);
    publish_copier(&vms);
    run::announce_vms();
    run::pcpu_main(0)
}

/// Build every VM and put it in the VM table: the dom0-like VM (multiboot modules under
/// `/chosen`, a bundle, or the embedded guest) unless only dom0less domains are configured, then
/// the domains, each on its own pCPUs with its own RAM and devices.
fn start_vms(
    p: &Platform,
    dtb: &'static [u8],
    opts: &cmdline::Options,
    setting: crate::coherency::Setting,
    src: &guest::Source,
    mem: &memory::HostMemory,
) -> Result<Vec<&'static crate::vm::instance::Vm>, alloc::string::String> {
    use crate::vm::{partition, table};
    let pcpus = smp::online_prefix();
    let has_dom0 = !matches!(src, guest::Source::Domains);
    let dom0_modules: Vec<crate::platform::Module> =
        if matches!(src, guest::Source::Multiboot) { p.chosen.modules.clone() } else { Vec::new() };
    let (dom0_cpus, plans) = if p.chosen.domains.is_empty() {
        (pcpus, Vec::new())
    } else {
        let free = mem.domain_area.map_or(0, |a| a.size);
        // A bundle or the embedded guest stands in for the dom0-like VM's modules.
        let stand_in = [crate::platform::Module {
            path: alloc::string::String::from("(the dom0-like VM)"),
            kind: crate::platform::ModuleKind::Kernel,
            compatible: Vec::new(),
            range: PaRange::new(p.memory[0].start.raw(), 0),
            bootargs: None,
        }];
        let dom0: &[crate::platform::Module] = match (has_dom0, dom0_modules.is_empty()) {
            (false, _) => &[],
            (true, false) => &dom0_modules,
            (true, true) => &stand_in,
        };
        let part = partition::partition(&p.chosen.domains, dom0, pcpus, free, &p.memory)?;
        (part.dom0_pcpus.len(), part.domains)
    };
    let (devs, withheld): (Vec<_>, Vec<_>) =
        plans.iter().map(|d| domains::assigned(p, d)).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    let mut taken = domains::taken_paths(&devs);
    for (i, path) in taken.iter().enumerate() {
        if taken[..i].contains(path) {
            return Err(alloc::format!("{path} is assigned to two domains"));
        }
    }
    debug_uart::take(p, opts, !has_dom0 || opts.console == cmdline::ConsoleOwner::Hyp, &mut taken)?;
    match mem.snapshot_area {
        Some(a) => crate::vm::snapshot::set_pool(a),
        None if opts.snapshot.on.is_some() || opts.snapshot.reset_restores => {
            log::warn!("snapshot: snapshot_on= and reset=snapshot need snapshot_mem=; ignored")
        }
        None => {}
    }
    // The VM each owned SMMU's DMA masters go to (`assign_streams`), known before the VMs are
    // built: a VM with any has no snapshots.
    let stream_vms: Vec<Option<usize>> = p
        .iommus
        .owners
        .iter()
        .filter(|o| crate::vm::smmu::owns(o.iommu))
        .map(|o| {
            let domain = devs.iter().position(|dv| dv.iter().any(|d| d.host_path == o.path));
            let enabled = p.device(&o.path).is_some_and(|d| d.status.is_enabled());
            crate::vm::snapshot::plan::stream_vm(domain, enabled, has_dom0)
        })
        .collect();
    let streams = |i: usize| stream_vms.iter().filter(|&&v| v == Some(i)).count();
    let mut vms = Vec::new();
    let insert = |vm: crate::vm::instance::Vm| {
        table::insert(vm).map_err(|vm| alloc::format!("no free VM slot for {}", vm.name))
    };
    if has_dom0 {
        let share = guest::Share { mem, pcpus: dom0_cpus, taken: &taken };
        let mut vm = guest::build(p, dtb, opts, setting, src, &share)?;
        guest::attach_vgic(p, dtb, &mut vm);
        let own = vm.name.clone();
        let mut names = alloc::vec![own.as_str()];
        names.extend(plans.iter().map(|d| d.name.as_str()));
        attach_snapshot(&mut vm, p, mem, opts, &names, streams(0));
        vms.push(insert(vm)?);
    }
    let mut names: Vec<&str> = vms.iter().map(|vm| vm.name.as_str()).collect();
    names.extend(plans.iter().map(|d| d.name.as_str()));
    let mut ram = memory::DomainRam::new(mem);
    for (i, ((d, dv), w)) in plans.iter().zip(&devs).zip(&withheld).enumerate() {
        let slot = table::free_slot().ok_or_else(|| alloc::format!("VM {}: the VM table is full", d.name))?;
        let mut vm = domains::build(p, d, dv, w, setting, slot, &mut ram)?;
        attach_snapshot(&mut vm, p, mem, opts, &names, streams(i + usize::from(has_dom0)));
        vms.push(insert(vm)?);
    }
    assign_streams(p, &vms, &stream_vms);
    Ok(vms)
}

/// Give each DMA master behind an SMMU el2visor owns to the VM that got the device: the domain
/// whose partial DT names it, else the dom0-like VM (which has every enabled device no domain
/// took): `stream_vms`, per owned master in order (`plan::stream_vm`). A device no VM has keeps
/// its streams aborted.
fn assign_streams(p: &Platform, vms: &[&'static crate::vm::instance::Vm], stream_vms: &[Option<usize>]) {
    for (o, v) in p.iommus.owners.iter().filter(|o| crate::vm::smmu::owns(o.iommu)).zip(stream_vms) {
        match v.and_then(|i| vms.get(i)) {
            Some(vm) => crate::vm::smmu::assign(o, vm),
            None => log::info!("SMMU: {} is in no VM: its DMA aborts", o.path),
        }
    }
}

/// Snapshots for `vm` when `snapshot_mem=` set a pool aside (every VM: its area comes from the
/// pool at its first snapshot). `snapshot_on=` (for this VM, `names` being every VM's) watches
/// the console the VM drives: its vpl011, or its passed-through PL011, tapped (`vm::uart_tap`).
/// `streams`: the DMA masters the VM is given through the SMMU; with any, no snapshots
/// (`plan::dma_refusal`), said in one line, and its snapshot calls answer NOT_SUPPORTED.
fn attach_snapshot(
    vm: &mut crate::vm::instance::Vm,
    p: &Platform,
    mem: &memory::HostMemory,
    opts: &cmdline::Options,
    names: &[&str],
    streams: usize,
) {
    if mem.snapshot_area.is_none() {
        return;
    }
    if let Some(why) = crate::vm::snapshot::plan::dma_refusal(streams) {
        log::warn!("snapshot: VM {}: {streams} {why}: no snapshots for it", vm.name);
        return;
    }
    let text = opts.snapshot.on.as_deref().and_then(|on| crate::vm::snapshot::plan::watch_text(on, &vm.name, names));
    match crate::vm::snapshot::Snapshot::new(vm, &opts.snapshot, text) {
        Ok(s) => {
            log::info!("snapshot: VM {}: {} MiB of RAM; its snapshot goes to snapshot_mem= when taken", vm.name, s.ram_size() >> 20);
            if let Some(w) = &s.watch {
                match &vm.vuart {
                    Some(u) => {
                        u.watch(w.clone());
                        log::info!("snapshot: VM {}: watching its vpl011 for snapshot_on=", vm.name);
                    }
                    None => tap_console(vm, p, opts, w.clone()),
                }
            }
            vm.snapshot = Some(s);
        }
        Err(e) => log::warn!("snapshot: VM {}: {e}: no snapshots for it", vm.name),
    }
}

/// Route the VM's passed-through console UART through a tap that watches for `snapshot_on=`.
fn tap_console(vm: &mut crate::vm::instance::Vm, p: &Platform, opts: &cmdline::Options, watch: alloc::sync::Arc<crate::vm::snapshot::plan::ConsoleWatch>) {
    let Some(c) = p.console.as_ref().filter(|_| opts.console == cmdline::ConsoleOwner::Guest) else {
        log::warn!("snapshot: VM {}: snapshot_on= needs the console UART passed through to it (console=guest); ignored", vm.name);
        return;
    };
    let (base, size) = (c.base.raw(), c.size.max(0x1000).next_multiple_of(0x1000));
    if !vm.is_device(base) {
        log::warn!("snapshot: VM {}: its console UART at {base:#x} is not its device; snapshot_on= ignored", vm.name);
        return;
    }
    if let Err(e) = vm.s2.lock().unmap(crate::mm::addr::Ipa(base), size) {
        log::warn!("snapshot: VM {}: snapshot_on=: {e}", vm.name);
        return;
    }
    let tap = crate::vm::uart_tap::UartTap { base, size, watch };
    let region = crate::vm::mmio::MmioRegion { name: "UART (snapshot_on= tap)", base, size, device: alloc::boxed::Box::new(tap) };
    match vm.mmio.add(region) {
        Ok(()) => log::info!("snapshot: VM {}: watching its console at {base:#x} for snapshot_on=", vm.name),
        Err(e) => log::warn!("snapshot: VM {}: snapshot_on=: {e}", vm.name),
    }
}

/// Take over the host GIC and set up this CPU's interface.
fn init_gic(p: &Platform) {
    use crate::gic::{hw, GicInfo, GicVersion};
    use crate::platform::GicKind;
    let Some(g) = &p.gic else {
        log::warn!("the device tree has no GIC: guests get no interrupts");
        return;
    };
    let hyp_timer_intid = p.timer.and_then(|t| t.hyp_phys);
    let info = match &g.kind {
        GicKind::V2 { dist, cpu, hyp, vcpu } => GicInfo {
            version: GicVersion::V2,
            dist: dist.start,
            cpu: Some(cpu.start),
            hyp: hyp.map(|r| r.start),
            vcpu: vcpu.map(|r| r.start),
            redist: Vec::new(),
            maintenance_intid: g.maintenance_intid.unwrap_or(crate::gic::MAINTENANCE_INTID),
            hyp_timer_intid,
        },
        GicKind::V3 { dist, redists, .. } => GicInfo {
            version: GicVersion::V3,
            dist: dist.start,
            cpu: None,
            hyp: None,
            vcpu: None,
            redist: redists.iter().map(|r| (r.start, r.size)).collect(),
            maintenance_intid: g.maintenance_intid.unwrap_or(crate::gic::MAINTENANCE_INTID),
            hyp_timer_intid,
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

/// Which of `n` images to copy (`src.to_copy`) are copied lazily, after the dom0-like VM has
/// started (`vm::pristine`): its multiboot kernel and initrd, which its first boot runs in place,
/// when a second vCPU's pCPU is idle to copy them in the background until the guest starts that
/// vCPU, and nothing else writes guest RAM behind Stage 2's back (no snapshot area, no GDB
/// stub). Dom0less domains keep eager copies (their pCPUs are their own).
fn lazy_pristine(p: &Platform, opts: &cmdline::Options, src: &guest::Source, n: usize) -> Vec<bool> {
    use crate::platform::ModuleKind;
    let vcpus = opts.guest_cpus.map_or(usize::MAX, |c| c as usize).min(smp::online_prefix());
    let ok = matches!(src, guest::Source::Multiboot)
        && p.chosen.domains.is_empty()
        && vcpus >= 2
        && opts.snapshot.mem.is_none()
        && opts.debug_uart.is_none();
    let mut defer: Vec<bool> = p.chosen.modules.iter().map(|m| ok && matches!(m.kind, ModuleKind::Kernel | ModuleKind::Ramdisk)).collect();
    defer.resize(n, false);
    defer
}

/// Set once the boot CPU has set up the host GIC's distributor (or failed to, or found none):
/// the secondaries wait for it before setting up their own CPU interfaces.
static GIC_DECIDED: AtomicBool = AtomicBool::new(false);

/// The pCPU that makes the dom0-like VM's lazy pristine copies, and the VM; set once the VMs
/// are built (`DECIDED`).
static COPIER: spin::Once<Option<(usize, &'static crate::vm::instance::Vm)>> = spin::Once::new();

/// Name the copier: the pCPU of the first VM's vCPU 1, idle until the guest starts that vCPU.
fn publish_copier(vms: &[&'static crate::vm::instance::Vm]) {
    let job = vms.first().filter(|vm| vm.lazy.is_some()).and_then(|vm| vm.vcpus.get(1).map(|v| (v.pcpu, *vm)));
    if let Some((_, vm)) = job {
        if job.is_some_and(|(pcpu, _)| pcpu == 0) {
            // Not expected (vCPU 1 is pinned to another pCPU); copy now rather than never.
            vm.complete_pristine();
        }
    }
    COPIER.call_once(|| job);
}

/// On the copier pCPU: make the pristine copies before running its vCPU (which the guest can
/// start only after they are made: Linux starts its secondaries before any driver probes, so
/// no device DMA reaches an image span not copied yet).
fn copy_pristine_in_background(index: usize) {
    run::sleep_until(|| COPIER.get().is_some());
    if let Some(Some((pcpu, vm))) = COPIER.get() {
        if *pcpu == index {
            let (bytes, ticks) = vm.complete_pristine();
            log::debug!("VM {}: pristine copies made in the background ({} KiB in {} us)", vm.name, bytes >> 10, crate::vm::snapshot::ticks_us(ticks));
        }
    }
}

/// Secondary CPU entry, with its MMU on: report in, then run this CPU's vCPU when there is one.
pub fn secondary(index: usize) -> ! {
    // Its firmware's workaround answers count before the boot CPU publishes them.
    crate::trap::firmware::join();
    smp::report_in(index);
    log::debug!("cpu {index} up at EL2 (MPIDR {:#x})", sysreg::mpidr_el1());
    // The boot CPU sets up the distributor soon after starting the secondaries: until then an
    // event loop, then this CPU's interface, so that it can sleep in WFI until kicked.
    while !GIC_DECIDED.load(Ordering::Acquire) {
        cpu::wait_for_event();
    }
    if let Err(e) = crate::gic::hw::init_cpu() {
        log::error!("cpu {index}: GIC CPU interface: {e}");
    }
    copy_pristine_in_background(index);
    run::pcpu_main(index)
}
