//! The probes, in the order they run. Each returns `Ok(())` or the reason it failed;
//! `report::outcome` prints the PROBE line.

mod aa32;
mod abort;
mod attr;
mod bench;
mod bench_exits;
mod bench_ipi;
mod cpu;
mod cpu_feat;
pub mod dma;
mod endian;
mod feat;
mod gic;
pub mod gdb_gate;
pub mod hostile;
mod isv;
pub mod panic;
mod its;
pub mod race;
pub mod reset;
mod rt_sweep;
mod rtc;
pub mod scan;
mod sctlr;
mod smccc;
pub mod snapshot;
mod snapshot_its;
mod snapshot_sme;
mod storm;
mod tvm;
mod tvm_feat;
mod vgic;
mod wfit;

use crate::report::outcome;
use probe_guest::abi::CoherencyMode;
use probe_guest::dt::{Gic, Platform};
use probe_guest::msg::Msg;

/// What the probes share: the platform and el2visor's coherency mode as it answered.
pub struct Context {
    pub platform: Platform,
    pub mode: Result<CoherencyMode, Msg>,
}

impl Context {
    /// The mode, or the reason it is unknown (for probes that cannot run without it).
    pub fn mode(&self) -> Result<CoherencyMode, Msg> {
        self.mode
    }

    /// The mode if el2visor answered; `None` means nothing rewrites register values.
    pub fn mode_if_known(&self) -> Option<CoherencyMode> {
        self.mode.ok()
    }
}

/// Run every probe (and the benchmark when the command line asks for it).
pub fn run_all(ctx: &Context) {
    outcome("ram_nc_attr", attr::ram_nc_attr(ctx));
    outcome("device_attr", attr::device_attr(ctx));
    outcome("sctlr_c0_attr", sctlr::sctlr_c0_attr(ctx));
    outcome("sctlr_m0_attr", sctlr::sctlr_m0_attr(ctx));
    tvm::run_all(ctx);
    let (mmfr3, regs) = tvm_feat::describe();
    println!("probe: ID_AA64MMFR3_EL1 {mmfr3:#x}, TVM feature registers:{regs}");
    outcome("tvm_feat_regs", tvm_feat::tvm_feat_regs(ctx));
    outcome("tvm_rt_sweep", rt_sweep::tvm_rt_sweep(ctx));
    outcome("mair_storm", storm::mair_storm(ctx));
    outcome("vgic_pending_disabled", vgic::pending_disabled(ctx));
    outcome("vgic_pending_in_lr", vgic::pending_in_lr(ctx));
    outcome("vgic_icpendr_retracts", vgic::icpendr_retracts(ctx));
    outcome("vgic_disable_holds_pending", vgic::disable_holds_pending(ctx));
    outcome("vgic_lr_overflow", vgic::lr_overflow(ctx));
    if ctx.platform.rtc.is_some() {
        outcome("vgic_level_once", rtc::level_once(ctx));
    } else {
        println!("probe: vgic_level_once not run: no arm,pl031 in the DT");
    }
    if matches!(ctx.platform.gic, Some(Gic::V3 { .. })) {
        outcome("vgic_redist_layout", vgic::redist_layout(ctx));
        outcome("vgic_sgi0r_asgi1r", vgic::sgi0r_asgi1r());
    } else {
        println!("probe: vgic_redist_layout and vgic_sgi0r_asgi1r not run: not a GICv3");
    }
    outcome("vgic_isv0_abort", isv::isv0_abort(ctx));
    outcome("mmio_big_endian", endian::mmio_big_endian(ctx));
    outcome("smccc_arch", smccc::smccc_arch());
    outcome("hvc_imm", smccc::hvc_imm());
    outcome("log_line", smccc::log_line(ctx));
    outcome("wfit", wfit::wfit());
    outcome("sme_tpidr2", feat::sme_tpidr2());
    outcome("sme2_zt0", feat::sme2_zt0());
    outcome("mops_exception", feat::mops_exception());
    outcome("aa32_it_block", aa32::aa32_it_block(&ctx.platform));
    cpu::run_all(ctx);
    // Last: they make el2visor inject aborts, which must not disturb anything, but if they did,
    // every other probe has reported already.
    if ctx.platform.fw_cfg.is_some() {
        outcome("fw_cfg_dma", abort::fw_cfg_dma(ctx));
    } else {
        println!("probe: fw_cfg_dma not run: not QEMU virt");
    }
    if ctx.platform.its.is_some() {
        outcome("its_garbage", its::its_garbage(ctx));
    } else {
        println!("probe: its_garbage not run: no virtual ITS in the DT");
    }
    outcome("s2_device_alignment", abort::s2_device_alignment(ctx));
    outcome("abort_injected", abort::abort_injected(ctx));
    if ctx.platform.bench {
        bench::mair_bench();
        bench_exits::run(ctx);
    }
}
