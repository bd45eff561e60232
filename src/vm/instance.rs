//! A running VM: its Stage-2 tables, its vCPUs and their power states, its virtual GIC and
//! emulated MMIO regions, and how it was loaded. `create` builds one from a [`VmSpec`]: Stage 2
//! with RAM (but its hidden ranges) and every passthrough device premapped (whole regions, blocks
//! where aligned), the
//! kernel, initrd and generated device tree copied into guest RAM per the arm64 boot protocol,
//! and the caches cleaned where FWB does not make that unnecessary. The caller completes it
//! (virtual GIC) and puts it in the VM table (`super::table`), where it lives from then on.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::arch::{cache, sysreg};
use crate::coherency::{Mode, Setting};
use crate::mm::addr::{Ipa, Pa, PaRange};
use crate::mm::frames::global::GlobalPages;
use crate::mm::stage2::hw::HwTlb;
use crate::mm::stage2::{AttrEncoding, S2Attrs, Stage2, Vtcr};
use crate::gic::lrs::VcpuIrq;
use crate::gic::virt::VGic;
use crate::vm::config::{RamRegion, MPIDR_RES1};
use crate::vm::mmio::MmioRegions;
use crate::vm::power::Power;
use crate::vm::guest_dt::domu::DomuDtSpec;
use crate::vm::guest_dt::{self, GuestDtSpec, GuestGic};
use crate::vm::passthrough::PtRegion;
use crate::vm::image;

/// Guest RAM at Stage 2 with 4 KiB pages (`s2_ram=`, set once at boot before any VM is built).
static RAM_PAGES: AtomicBool = AtomicBool::new(false);

/// The `s2_ram=` policy for every VM built from now on: `true` maps guest RAM with 4 KiB pages
/// only, `false` with 2 MiB / 1 GiB blocks where aligned (docs/architecture.md, section 5).
pub fn set_ram_pages(on: bool) {
    RAM_PAGES.store(on, Ordering::Relaxed);
}

/// What to build a VM from.
pub struct VmSpec<'a> {
    pub name: String,
    /// The VM-table slot the VM will take (`super::table::free_slot`); its VMID is `slot + 1`.
    pub slot: usize,
    pub ram: Vec<RamRegion>,
    /// MPIDR affinity of each vCPU.
    pub vcpu_mpidrs: Vec<u64>,
    /// The pCPU each vCPU is pinned to.
    pub pcpus: Vec<usize>,
    /// The images, in memory el2visor keeps for the VM's life: they are the pristine copies a
    /// SYSTEM_RESET reloads from.
    pub kernel: &'static [u8],
    pub initrd: Option<&'static [u8]>,
    pub bootargs: String,
    pub extra_bootargs: Option<String>,
    pub dt_props: Option<Vec<u8>>,
    pub disable_paths: Vec<String>,
    /// Host DT nodes the guest must not see at all.
    pub drop_paths: Vec<String>,
    /// Host DT properties the guest must not see on any node (`iommus` when el2visor owns the SMMU).
    pub drop_props: Vec<&'static str>,
    /// Passthrough device ranges, identity mapped, Device-nGnRE.
    pub devices: Vec<PaRange>,
    /// Passthrough memory ranges (prefetchable PCI windows), identity mapped, Normal-NC.
    pub nc_devices: Vec<PaRange>,
    /// GICv2: the guest's GICC range and the GICV frame mapped there.
    pub gicv: Option<(PaRange, Pa)>,
    pub gic: Option<GuestGic>,
    pub host_dtb: &'a [u8],
    pub setting: Setting,
    /// Guest RAM where no image may be loaded: boot modules the images are copied from, firmware
    /// memory.
    pub keep_out: Vec<crate::vm::load::Region>,
    /// Passthrough regions mapped at a guest address of their own (a dom0less domain's
    /// `xen,reg`), Device-nGnRE.
    pub mapped_devices: Vec<PtRegion>,
    /// A dom0less domain: its DT is written from scratch (`guest_dt::domu`) rather than from
    /// the host's, and `host_dtb` and the host-DT edits above are not used.
    pub domu_dt: Option<DomuDtSpec>,
    /// Zero the VM's RAM before the images go in (RAM that held anything before).
    pub zero_ram: bool,
    /// Where the kernel and the initrd already are in `ram` (the loader's copies, now the VM's
    /// memory): the first boot runs them there when the boot protocol allows, without a copy.
    pub in_place: crate::vm::load::InPlace,
    /// Images whose pristine copy (`kernel`, `initrd`) is not made yet (`super::pristine`): the
    /// first boot runs them in place and the copy is made lazily, else here, before anything
    /// is written to guest RAM.
    pub unfilled: crate::vm::pristine::Unfilled,
    /// Parts of `ram` Stage 2 leaves unmapped (firmware's `/memreserve/` ranges, spin tables): the
    /// guest's `/memory` covers them and its `/memreserve/` reserves them. Placement must keep out.
    pub hidden: Vec<PaRange>,
    /// The host ITS's base when the VM gets a virtual ITS there (`vm::its`): its guest DT keeps
    /// the ITS node and the MSI references to it.
    pub virtual_its: Option<u64>,
}

/// Why a VM could not be built.
#[derive(Debug)]
pub enum VmError {
    Image(image::ImageError),
    Load(crate::vm::load::LoadError),
    GuestDt(guest_dt::GuestDtError),
    Stage2(crate::mm::stage2::S2Error),
    DtbTooBig { planned: u64, got: usize },
    NoRam,
}

impl core::fmt::Display for VmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VmError::Image(e) => write!(f, "guest kernel: {e}"),
            VmError::Load(e) => write!(f, "placing the guest images: {e}"),
            VmError::GuestDt(e) => write!(f, "guest device tree: {e}"),
            VmError::Stage2(e) => write!(f, "Stage-2 tables: {e}"),
            VmError::DtbTooBig { planned, got } => {
                write!(f, "the guest device tree grew to {got} bytes, more than the {planned} planned")
            }
            VmError::NoRam => write!(f, "the VM has no RAM"),
        }
    }
}

/// A vCPU's placement and its pending start request (set by CPU_ON, taken by its pCPU).
pub struct VcpuSlot {
    pub mpidr: u64,
    pub pcpu: usize,
    pub start: spin::Mutex<Option<VcpuStart>>,
}

/// How a vCPU starts: vCPU 0 at creation and after a reset, the others by PSCI CPU_ON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuStart {
    /// The first instruction (EL1h, MMU off).
    pub entry: u64,
    /// x0 there: the device tree's address for vCPU 0, CPU_ON's context ID for the others.
    pub context: u64,
    /// Data big-endian (SCTLR_EL1.EE): PSCI starts a CPU_ON target with its caller's
    /// endianness; vCPU 0 starts little-endian (the boot protocol).
    pub big_endian: bool,
}

impl VcpuStart {
    /// A little-endian start (vCPU 0's).
    pub const fn boot(entry: u64, context: u64) -> Self {
        Self { entry, context, big_endian: false }
    }
}

/// VM lifecycle.
pub const RUNNING: u8 = 0;
pub const OFF: u8 = 1;
/// A SYSTEM_RESET is in progress: every vCPU stops, the images are reloaded, vCPU 0 restarts.
pub const RESETTING: u8 = 2;
/// Every vCPU stops at an instruction boundary, saving its state, for a snapshot or a restore
/// (`vcpu::snapshot`); then the VM runs again.
pub const PAUSED: u8 = 3;

/// What a reset reloads, and where.
pub struct Pristine {
    pub kernel: &'static [u8],
    pub initrd: Option<&'static [u8]>,
    pub dtb: Vec<u8>,
    pub kernel_ipa: u64,
    pub initrd_ipa: Option<u64>,
    pub dtb_ipa: u64,
}

pub struct Vm {
    pub name: String,
    /// The VM's slot in the VM table (its VMID is `slot + 1`).
    pub slot: usize,
    pub setting: Setting,
    pub s2: spin::Mutex<Stage2<GlobalPages, HwTlb>>,
    pub vttbr: u64,
    pub vtcr: u64,
    pub vcpus: Vec<VcpuSlot>,
    /// Each vCPU's interrupt delivery (inbox, list registers), by vCPU index.
    pub irqs: Vec<VcpuIrq>,
    /// The virtual GIC, when the host has a GIC.
    pub vgic: Option<VGic>,
    /// Emulated MMIO regions (the virtual GIC's distributor and redistributors, the vpl011).
    pub mmio: MmioRegions,
    /// The emulated UART, when the VM has one (Xen's `vpl011`): its console.
    pub vuart: Option<alloc::sync::Arc<crate::vm::vuart::VUart>>,
    pub power: spin::Mutex<Power>,
    pub ram: Vec<RamRegion>,
    /// The (IPA, size) parts of `ram` Stage 2 leaves out (`VmSpec::hidden`): firmware's.
    pub hidden: Vec<(u64, u64)>,
    /// Every passthrough range, Device or Normal-NC (a Stage-2 fault there is a bug: `s2_mmio`).
    pub devices: Vec<PaRange>,
    pub entry: Ipa,
    pub dtb: Ipa,
    pub state: AtomicU8,
    pub pristine: Pristine,
    /// Cache maintenance after writing guest RAM (not with FWB).
    pub clean: bool,
    /// Its crashes: pvpanic events, when the current run started, crashes in a row, the
    /// debugger hold (`super::crash`).
    pub crash: crate::vm::crash::CrashState,
    /// Where its pvpanic device is (guest-physical).
    pub pvpanic: u64,
    /// Snapshots (`snapshot_mem=`), set by boot when the VM's RAM fits the area.
    pub snapshot: Option<crate::vm::snapshot::Snapshot>,
    /// The pristine images' copies still to be made (`super::pristine_lazy`), if any.
    pub lazy: Option<crate::vm::pristine_lazy::LazyPristine>,
}

impl Vm {
    /// The vCPU that pCPU `pcpu` runs, if any.
    pub fn vcpu_on(&self, pcpu: usize) -> Option<usize> {
        self.vcpus.iter().position(|v| v.pcpu == pcpu)
    }

    /// Whether IPA `ipa` is a passthrough device address (premapped: a fault there is a bug).
    pub fn is_device(&self, ipa: u64) -> bool {
        self.devices.iter().any(|d| d.contains(ipa))
    }

    /// Whether IPA `ipa` is guest RAM.
    pub fn is_ram(&self, ipa: u64) -> bool {
        self.ram.iter().any(|r| ipa >= r.ipa.raw() && ipa < r.ipa_end())
    }

    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Ask vCPU `v` to start at `entry` with `context` (after PSCI CPU_ON accepted it, or a
    /// reset), and wake its pCPU.
    pub fn request_start(&self, v: usize, entry: u64, context: u64) {
        *self.vcpus[v].start.lock() = Some(VcpuStart::boot(entry, context));
        crate::gic::hw::kick_pcpu(self.vcpus[v].pcpu);
    }

    /// Make vCPU `v` leave its guest (a reset or the VM's end needs it at EL2).
    pub fn kick(&self, v: usize) {
        crate::gic::hw::kick_pcpu(self.vcpus[v].pcpu);
    }

    /// A Stage-2 abort at `ipa` that a lazy pristine copy explains (the guest's first write to
    /// an image page not copied yet, or an access while the copy remapped it): copied and
    /// mapped read-write now, the guest runs the access again.
    pub fn pristine_fault(&self, ipa: u64) -> bool {
        self.lazy.as_ref().is_some_and(|l| l.fault(&self.s2, ipa))
    }

    /// Make every pristine copy still to make (the background copier). Returns (bytes, ticks).
    pub fn complete_pristine(&self) -> (u64, u64) {
        self.lazy.as_ref().map_or((0, 0), |l| l.copy_all(&self.s2))
    }

    /// Copy the pristine images back into guest RAM (a SYSTEM_RESET; every vCPU is stopped).
    pub fn reload(&self) -> Result<(), VmError> {
        // Copies still to be made come from guest RAM the guest could not write yet.
        self.complete_pristine();
        let p = &self.pristine;
        let images = [(Some(p.kernel_ipa), Some(p.kernel)), (p.initrd_ipa, p.initrd), (Some(p.dtb_ipa), Some(&p.dtb[..]))];
        for (ipa, bytes) in images.into_iter().filter_map(|(ipa, bytes)| Some((ipa?, bytes?))) {
            crate::vm::snapshot::host_write(self, ipa, bytes.len() as u64);
            copy_in(&self.ram, ipa, bytes, self.clean)?;
        }
        if self.clean {
            cache::invalidate_icache_all();
        }
        Ok(())
    }
}

fn ram_pa(ram: &[RamRegion], ipa: u64, len: usize) -> Option<u64> {
    ram.iter().find_map(|r| {
        (ipa >= r.ipa.raw() && ipa + len as u64 <= r.ipa_end()).then(|| r.pa.raw() + (ipa - r.ipa.raw()))
    })
}

/// Copy `bytes` into guest RAM at `ipa` (and clean it to PoC without FWB: the guest starts with
/// its MMU and caches off).
fn copy_in(ram: &[RamRegion], ipa: u64, bytes: &[u8], clean: bool) -> Result<(), VmError> {
    let pa = ram_pa(ram, ipa, bytes.len()).ok_or(VmError::NoRam)?;
    // SAFETY: `pa..pa+len` is guest RAM (checked above), identity mapped at EL2, owned by this VM
    // and not yet running; `bytes` lives elsewhere (a boot module's pristine copy or el2visor's
    // image), so the two do not overlap. The bulk goes 64 bytes at a time where both are aligned.
    unsafe { cache::copy(pa, bytes.as_ptr() as u64, bytes.len() as u64) };
    if clean {
        cache::clean_inval_range(pa, bytes.len());
    } else {
        // FWB: the guest sees RAM write-back even with its MMU off; only the I-side needs care.
        cache::sync_icache_range(pa, bytes.len());
    }
    Ok(())
}

/// [`copy_in`], or when `here` says the same bytes are already at `ipa`, only its cache maintenance:
/// to the PoC without FWB; with FWB none here (they are where the loader put them and cleaned, or
/// `boot::memory` cleaned them to the PoU when it moved them aside), the caller invalidates the
/// instruction cache once.
fn place(ram: &[RamRegion], ipa: u64, bytes: &[u8], clean: bool, here: bool) -> Result<(), VmError> {
    if !here {
        return copy_in(ram, ipa, bytes, clean);
    }
    let pa = ram_pa(ram, ipa, bytes.len()).ok_or(VmError::NoRam)?;
    if clean {
        cache::clean_inval_range(pa, bytes.len());
    }
    Ok(())
}

/// Build the VM. vCPU 0 is left `OnPending` at the kernel entry; the caller adds the virtual
/// GIC and puts the VM in the table.
pub fn create(spec: VmSpec<'_>) -> Result<Vm, VmError> {
    let mode = spec.setting.mode;
    let slot = spec.slot;
    let vmid = slot as u16 + 1;
    let biggest = *spec.ram.iter().max_by_key(|r| r.size).ok_or(VmError::NoRam)?;
    // An unfilled pristine slot: the kernel's bytes are where the loader put them.
    let kernel_now = match spec.unfilled.kernel {
        // SAFETY: `pa` is the kernel image in the VM's RAM (identity mapped at EL2), as long as
        // its pristine slot; nothing has written guest RAM yet.
        Some(pa) => unsafe { core::slice::from_raw_parts(pa as *const u8, spec.kernel.len()) },
        None => spec.kernel,
    };
    let header = image::parse_header(kernel_now).map_err(VmError::Image)?;
    if spec.pcpus.len() != spec.vcpu_mpidrs.len() {
        return Err(VmError::NoRam);
    }
    // Every VM has a pvpanic device, at a page nothing else of it uses.
    let pvpanic = crate::vm::pvpanic::place(&used_ipa(&spec));
    let domu_dt = spec.domu_dt.as_ref().map(|d| DomuDtSpec { pvpanic: Some(pvpanic), ..d.clone() });
    // The DT's size is known before its initrd address: a domain's is generated once to size it.
    let dtb_budget = match &domu_dt {
        Some(d) => guest_dt::domu::generate(&DomuDtSpec { initrd: Some((0, 0)), ..d.clone() }).map_err(VmError::GuestDt)?.len() as u64 + 0x1000,
        None => spec.host_dtb.len() as u64 + 0x4000 + spec.dt_props.as_ref().map_or(0, |p| p.len() as u64),
    }
    .next_multiple_of(8);
    let hidden_ipa: Vec<(u64, u64)> = spec.hidden.iter().flat_map(|h| spec.ram.iter().filter_map(|r| guest_part(r, h))).collect();
    let mut keep_out = spec.keep_out.clone();
    keep_out.extend(hidden_ipa.iter().map(|&(ipa, size)| crate::vm::load::Region::new("unmapped firmware memory", ipa, size)));
    let plan = crate::vm::load::plan_load_in_place(
        (biggest.ipa, biggest.size),
        spec.kernel.len() as u64,
        &header,
        spec.initrd.map_or(0, |i| i.len() as u64),
        dtb_budget,
        &keep_out,
        spec.in_place,
    )
    .map_err(VmError::Load)?;

    // Pristine copies: those the first boot does not run in place are made now, before anything
    // is written to guest RAM; the others later (`pristine_lazy`).
    let kernel_here = spec.in_place.kernel == Some(plan.kernel.start.raw());
    let initrd_here = plan.initrd.is_some_and(|r| spec.in_place.initrd == Some(r.start.raw()));
    let mut lazy = Vec::new();
    let images = [(spec.unfilled.kernel, Some(spec.kernel), kernel_here, plan.kernel.start.raw()), (spec.unfilled.initrd, spec.initrd, initrd_here, plan.initrd.map_or(0, |r| r.start.raw()))];
    for (from, slot, here, ipa) in images {
        let (Some(pa), Some(slot)) = (from, slot) else { continue };
        let pending = crate::vm::pristine::Pending { ipa, pa, slot: slot.as_ptr() as u64, len: slot.len() as u64 };
        if here && ram_pa(&spec.ram, ipa, slot.len()) == Some(pa) {
            lazy.push(pending);
        } else {
            // SAFETY: `pa` holds the image (the VM's RAM, nothing written there yet), `slot` is
            // its pristine slot in el2visor's memory: both identity mapped, apart.
            unsafe { cache::copy(pending.slot, pa, pending.len) };
        }
    }

    let dt_spec = GuestDtSpec {
        ram: spec.ram.clone(),
        reserved: hidden_ipa.clone(),
        vcpu_mpidrs: spec.vcpu_mpidrs.clone(),
        bootargs: spec.bootargs.clone(),
        extra_bootargs: spec.extra_bootargs.clone(),
        initrd: plan.initrd.map(|r| (r.start.raw(), r.start.raw() + r.size)),
        stdout_path: None,
        gic: spec.gic.clone(),
        drop_paths: spec.drop_paths.clone(),
        disable_paths: spec.disable_paths.clone(),
        drop_props: spec.drop_props.clone(),
        dt_props: spec.dt_props.clone(),
        pvpanic: Some(pvpanic),
        keep_its: spec.virtual_its.is_some(),
    };
    let dtb = match &domu_dt {
        Some(d) => guest_dt::domu::generate(&DomuDtSpec {
            bootargs: spec.bootargs.clone(),
            initrd: dt_spec.initrd,
            ..d.clone()
        }),
        None => guest_dt::generate(spec.host_dtb, &dt_spec),
    }
    .map_err(VmError::GuestDt)?;
    if dtb.len() as u64 > plan.dtb.size {
        return Err(VmError::DtbTooBig { planned: plan.dtb.size, got: dtb.len() });
    }

    // Stage 2: RAM, then every passthrough device, whole.
    // The IPA space is as large as the VM needs and the CPU allows: fewer bits can mean a shallower
    // Stage-2 walk (40 bits start at level 1 with two concatenated tables, not level 0).
    let vtcr = Vtcr::from_id_regs(sysreg::id_aa64mmfr0_el1(), sysreg::id_aa64mmfr1_el1()).map_err(VmError::Stage2)?;
    let vtcr = match needed_ipa_bits(&spec).max(64 - (pvpanic + crate::vm::pvpanic::SIZE - 1).leading_zeros() as u8) {
        bits if bits < vtcr.ipa_bits => vtcr.with_ipa_bits(bits).map_err(VmError::Stage2)?,
        _ => vtcr,
    };
    let enc = if mode == Mode::Fwb { AttrEncoding::Fwb } else { AttrEncoding::Classic };
    let mut s2 = Stage2::with_encoding(vtcr, vmid, enc, GlobalPages, HwTlb::new()).map_err(VmError::Stage2)?;
    s2.set_ram_pages(RAM_PAGES.load(Ordering::Relaxed));
    // The image spans whose pristine copy is still to make are read-only from the start (no
    // live entry to change, so no TLB maintenance).
    let spans = crate::vm::pristine::spans(&lazy);
    for r in &spec.ram {
        let pieces = crate::mm::layout::free_ranges(&[PaRange::new(r.pa.raw(), r.size)], &spec.hidden);
        for p in pieces {
            let ipa = r.ipa.raw() + (p.start.raw() - r.pa.raw());
            for (at, size, ro) in crate::vm::pristine::split(ipa, p.size, &spans) {
                let attrs = if ro { S2Attrs::ram().read_only() } else { S2Attrs::ram() };
                s2.map(Ipa(at), Pa(p.start.raw() + (at - ipa)), size, attrs).map_err(VmError::Stage2)?;
            }
        }
    }
    for d in &spec.devices {
        s2.map(Ipa(d.start.raw()), d.start, d.size, S2Attrs::device()).map_err(VmError::Stage2)?;
    }
    for d in &spec.nc_devices {
        s2.map(Ipa(d.start.raw()), d.start, d.size, S2Attrs::normal_nc()).map_err(VmError::Stage2)?;
    }
    for d in &spec.mapped_devices {
        s2.map(Ipa(d.ipa), Pa(d.pa), d.size, S2Attrs::device()).map_err(VmError::Stage2)?;
    }
    if let Some((gicc, gicv)) = spec.gicv {
        s2.map(Ipa(gicc.start.raw()), gicv, gicc.size, S2Attrs::device()).map_err(VmError::Stage2)?;
    }
    let order = crate::vm::pristine::copy_order(&lazy, &spans);
    let lazy = (!spans.is_empty()).then(|| crate::vm::pristine_lazy::LazyPristine::new(spans, order, mode != Mode::Fwb));
    log::info!("VM {}: {}", spec.name, s2.vtcr());
    if log::log_enabled!(log::Level::Debug) {
        log::debug!("VM {}: Stage-2 layout:", spec.name);
        for line in s2.dump().lines() {
            log::debug!("  {line}");
        }
    }

    // Images, with cache maintenance unless FWB makes it unnecessary.
    // An image the plan left where it already is needs only the cache maintenance.
    let clean = mode != Mode::Fwb;
    if spec.zero_ram {
        // No VM reads what its frames held before.
        for r in &spec.ram {
            // SAFETY: the VM's RAM, identity mapped at EL2, not yet running and owned by nobody
            // else (its frames were just allocated for it).
            unsafe { core::ptr::write_bytes(r.pa.raw() as *mut u8, 0, r.size as usize) };
            if clean {
                cache::clean_inval_range(r.pa.raw(), r.size as usize);
            }
        }
    }
    place(&spec.ram, plan.kernel.start.raw(), spec.kernel, clean, kernel_here)?;
    if let (Some(r), Some(bytes)) = (plan.initrd, spec.initrd) {
        place(&spec.ram, r.start.raw(), bytes, clean, initrd_here)?;
    }
    copy_in(&spec.ram, plan.dtb.start.raw(), &dtb, clean)?;
    // Also for an image left in place (see `place`).
    cache::invalidate_icache_all();

    let n = spec.vcpu_mpidrs.len();
    let vcpus = spec
        .vcpu_mpidrs
        .iter()
        .enumerate()
        .map(|(i, &m)| VcpuSlot { mpidr: m, pcpu: spec.pcpus[i], start: spin::Mutex::new(None) })
        .collect::<Vec<_>>();
    *vcpus[0].start.lock() = Some(VcpuStart::boot(plan.entry().raw(), plan.dtb.start.raw()));
    let irqs = vcpus.iter().map(|v| VcpuIrq::new(v.pcpu)).collect();
    let crash = crate::vm::crash::CrashState::new(sysreg::cntpct_el0());
    let mut mmio = MmioRegions::default();
    // The first region of the VM: nothing to overlap.
    if let Err(e) = mmio.add(crate::vm::mmio::MmioRegion {
        name: "pvpanic",
        base: pvpanic,
        size: crate::vm::pvpanic::SIZE,
        device: alloc::boxed::Box::new(crate::vm::pvpanic::PvPanic(crash.events.clone())),
    }) {
        log::error!("VM {}: {e}", spec.name);
    }
    let vm = Vm {
        name: spec.name,
        slot,
        setting: spec.setting,
        vttbr: s2.vttbr(),
        vtcr: s2.vtcr().value(),
        power: spin::Mutex::new(Power::new(
            spec.vcpu_mpidrs.clone(),
            spec.ram.iter().map(|r| (r.ipa.raw(), r.ipa_end())).collect(),
            spec.setting,
        )),
        s2: spin::Mutex::new(s2),
        vcpus,
        irqs,
        vgic: None,
        mmio,
        vuart: None,
        ram: spec.ram,
        hidden: hidden_ipa,
        devices: spec
            .devices
            .iter()
            .chain(&spec.nc_devices)
            .copied()
            .chain(spec.mapped_devices.iter().map(|d| PaRange::new(d.ipa, d.size)))
            .collect(),
        entry: plan.entry(),
        dtb: plan.dtb.start,
        state: AtomicU8::new(RUNNING),
        pristine: Pristine {
            kernel: spec.kernel,
            initrd: spec.initrd,
            dtb,
            kernel_ipa: plan.kernel.start.raw(),
            initrd_ipa: plan.initrd.map(|r| r.start.raw()),
            dtb_ipa: plan.dtb.start.raw(),
        },
        clean,
        crash,
        pvpanic,
        snapshot: None,
        lazy,
    };
    log::info!(
        "VM {}: {} vCPUs, {} MiB RAM, kernel at {:#x}, DTB at {:#x}{}",
        vm.name,
        n,
        vm.ram.iter().map(|r| r.size).sum::<u64>() >> 20,
        vm.entry.raw(),
        vm.dtb.raw(),
        plan.initrd.map_or(String::new(), |r| alloc::format!(", initrd at {:#x} ({} bytes)", r.start.raw(), r.size))
    );
    Ok(vm)
}

/// The part of host range `h` that RAM region `r` maps, as guest-physical (start, size).
fn guest_part(r: &RamRegion, h: &PaRange) -> Option<(u64, u64)> {
    let lo = h.start.raw().max(r.pa.raw());
    let hi = h.end().min(r.pa.raw() + r.size);
    (lo < hi).then(|| (r.ipa.raw() + (lo - r.pa.raw()), hi - lo))
}

/// Every (start, size) range of the VM's IPA space that is taken: RAM, devices, the GIC frames
/// it sees (a redistributor per possible vCPU), a domain's vpl011.
fn used_ipa(spec: &VmSpec<'_>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = spec.ram.iter().map(|r| (r.ipa.raw(), r.size)).collect();
    v.extend(spec.devices.iter().chain(&spec.nc_devices).map(|d| (d.start.raw(), d.size)));
    v.extend(spec.mapped_devices.iter().map(|d| (d.ipa, d.size)));
    if spec.domu_dt.as_ref().is_some_and(|d| d.vpl011) {
        v.push((crate::vm::vpl011::GUEST_BASE, crate::vm::vpl011::GUEST_SIZE));
    }
    if let Some((gicc, _)) = spec.gicv {
        v.push((gicc.start.raw(), gicc.size));
    }
    match &spec.gic {
        Some(GuestGic::V2 { dist, cpu }) => v.extend([*dist, *cpu]),
        Some(GuestGic::V3 { dist, redist, redist_stride }) => {
            v.push(*dist);
            v.push((*redist, (crate::percpu::MAX_CPUS as u64) * guest_dt::redist_stride(*redist_stride)));
        }
        None => {}
    }
    v
}

/// Address bits that cover every IPA the VM can use: its RAM, its devices, the GIC frames it
/// sees (emulated or GICV); at least 32.
fn needed_ipa_bits(spec: &VmSpec<'_>) -> u8 {
    let mut end = spec.ram.iter().map(|r| r.ipa_end()).max().unwrap_or(0);
    end = end.max(spec.devices.iter().chain(&spec.nc_devices).map(|d| d.end()).max().unwrap_or(0));
    end = end.max(spec.mapped_devices.iter().map(|d| d.ipa + d.size).max().unwrap_or(0));
    if spec.domu_dt.as_ref().is_some_and(|d| d.vpl011) {
        end = end.max(crate::vm::vpl011::GUEST_BASE + crate::vm::vpl011::GUEST_SIZE);
    }
    if let Some((gicc, _)) = spec.gicv {
        end = end.max(gicc.end());
    }
    end = end.max(match &spec.gic {
        Some(GuestGic::V2 { dist, cpu }) => (dist.0 + dist.1).max(cpu.0 + cpu.1),
        // Room for a redistributor per possible vCPU.
        Some(GuestGic::V3 { dist, redist, redist_stride }) => {
            (dist.0 + dist.1).max(redist + (crate::percpu::MAX_CPUS as u64) * guest_dt::redist_stride(*redist_stride))
        }
        None => 0,
    });
    (64 - end.saturating_sub(1).leading_zeros()).max(32) as u8
}

/// VMPIDR_EL2 for a vCPU MPIDR affinity.
pub fn vmpidr(mpidr: u64) -> u64 {
    mpidr | MPIDR_RES1
}
