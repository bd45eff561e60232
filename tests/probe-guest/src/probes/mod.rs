//! The probes, in the order they run. Each returns `Ok(())` or the reason it failed;
//! `report::outcome` prints the PROBE line.

mod abort;
mod attr;
mod bench;
pub mod hostile;
pub mod reset;
mod storm;
mod tvm;

use crate::report::outcome;
use probe_guest::abi::CoherencyMode;
use probe_guest::dt::Platform;
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
    tvm::run_all(ctx);
    outcome("mair_storm", storm::mair_storm(ctx));
    // Last: it makes el2visor inject aborts, which must not disturb anything, but if they did,
    // every other probe has reported already.
    outcome("abort_injected", abort::abort_injected(ctx));
    if ctx.platform.bench {
        bench::mair_bench();
    }
}
