//! The console and the `log` backend.
//!
//! Until the EL2 MMU is on, memory is Device and exclusive accesses (which locks need) are not
//! reliable on real cores, so early output goes straight to the UART without a lock — only the
//! primary CPU runs then. Once `enable_locking` is called, each line is formatted into a buffer
//! and written under a spinlock, so lines from different CPUs never interleave.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::{cpu, sysreg};
use crate::drivers::pl011::Pl011;

static UART_BASE: AtomicUsize = AtomicUsize::new(0);
static LOCKING: AtomicBool = AtomicBool::new(false);
/// A ticket lock: CPUs print their lines in the order they asked, so a VM that floods its
/// console (every vpl011 line goes through here) cannot starve another VM's lines or el2visor's.
static LINE_LOCK: spin::mutex::TicketMutex<()> = spin::mutex::TicketMutex::new(());

/// Send console output to the PL011 at `base` (0: nowhere).
pub fn set_console(base: usize) {
    UART_BASE.store(base, Ordering::Relaxed);
    if let Some(u) = uart() {
        u.enable_tx();
    }
}

/// The console's base address, 0 when there is none.
pub fn console_base() -> usize {
    UART_BASE.load(Ordering::Relaxed)
}

fn uart() -> Option<Pl011> {
    match UART_BASE.load(Ordering::Relaxed) {
        0 => None,
        // SAFETY: set_console is only given the PL011 named by the device tree's stdout-path
        // (or a platform's known console when the DT is unusable).
        base => Some(unsafe { Pl011::new(base) }),
    }
}

/// Serialise whole lines from here on (call once the MMU is on).
pub fn enable_locking() {
    LOCKING.store(true, Ordering::Release);
}

/// Who has an unfinished line on the console ([`write_partial`], [`write_through`]): 0 for
/// nobody.
static PARTIAL: AtomicUsize = AtomicUsize::new(0);
/// When the last byte of that unfinished line went out (CNTPCT_EL0), and from which CPU.
static PARTIAL_AT: AtomicU64 = AtomicU64::new(0);
static PARTIAL_CPU: AtomicUsize = AtomicUsize::new(0);

/// A whole line waits for an unfinished line that is still being written from another CPU to
/// end, so that the two do not cut each other: for as long as bytes keep coming at most
/// `LINE_IDLE_US` apart, and `LINE_WAIT_US` at most in all. A line left unfinished (a prompt)
/// or an owner that cannot go on meanwhile costs one idle wait at most; one written from this
/// CPU (its vCPU is not running now) none.
const LINE_IDLE_US: u64 = 2000;
const LINE_WAIT_US: u64 = 20_000;

fn ticks(us: u64) -> u64 {
    sysreg::cntfrq_el0().saturating_mul(us) / 1_000_000
}

/// Write raw bytes as one unit, on a line of their own if a VM's unfinished line is on the
/// console ([`write_partial`], [`write_through`]): after it ends if it is still being written
/// (see `LINE_IDLE_US`).
pub fn write_raw(s: &[u8]) {
    let Some(u) = uart() else { return };
    if !LOCKING.load(Ordering::Acquire) {
        u.write_bytes(s);
        return;
    }
    let start = sysreg::cntpct_el0();
    loop {
        let g = LINE_LOCK.lock();
        if PARTIAL.load(Ordering::Relaxed) != 0 {
            let now = sysreg::cntpct_el0();
            let idle = now.wrapping_sub(PARTIAL_AT.load(Ordering::Relaxed));
            let elsewhere = PARTIAL_CPU.load(Ordering::Relaxed) != cpu::current();
            if elsewhere && idle < ticks(LINE_IDLE_US) && now.wrapping_sub(start) < ticks(LINE_WAIT_US) {
                drop(g);
                core::hint::spin_loop();
                continue;
            }
            PARTIAL.store(0, Ordering::Relaxed);
            u.write_bytes(b"\n");
        }
        u.write_bytes(s);
        return;
    }
}

/// Note that `owner` left byte `b` on the console (under the lock): its line is unfinished
/// unless `b` ends it.
fn note_partial(owner: usize, b: u8) {
    PARTIAL.store(if b == b'\n' { 0 } else { owner }, Ordering::Relaxed);
    PARTIAL_AT.store(sysreg::cntpct_el0(), Ordering::Relaxed);
    PARTIAL_CPU.store(cpu::current(), Ordering::Relaxed);
}

/// Give the console's line to `owner` (under the lock): another owner's unfinished line is
/// ended first. Whether the line was `owner`'s already (else its next byte starts a line).
fn take_line(u: &Pl011, owner: usize) -> bool {
    let current = PARTIAL.load(Ordering::Relaxed);
    if current != owner && current != 0 {
        u.write_bytes(b"\n");
    }
    current == owner
}

/// Bytes of output from `owner` (nonzero, unique: a VM's console) shown as they come, an
/// unfinished line left on the console: each of its lines starts with `prefix`, and a line
/// printed meanwhile by anyone else (a whole line through [`write_raw`], another owner's bytes)
/// starts on a line of its own.
pub fn write_partial(owner: usize, prefix: &[u8], bytes: &[u8]) {
    let Some(u) = uart() else { return };
    let _g = LOCKING.load(Ordering::Acquire).then(|| LINE_LOCK.lock());
    for &b in bytes {
        if !take_line(&u, owner) {
            u.write_bytes(prefix);
        }
        u.write_bytes(&[b]);
        note_partial(owner, b);
    }
}

/// End `owner`'s unfinished line on the console, if it has one there (its VM reset or ended):
/// what it prints next starts a line of its own.
pub fn end_partial(owner: usize) {
    let Some(u) = uart() else { return };
    let _g = LOCKING.load(Ordering::Acquire).then(|| LINE_LOCK.lock());
    if PARTIAL.load(Ordering::Relaxed) == owner {
        PARTIAL.store(0, Ordering::Relaxed);
        u.write_bytes(b"\n");
    }
}

/// A byte `b` that `owner` (nonzero, unique: a VM whose console UART is passed through, its
/// writes tapped) writes straight to the console UART: `write` makes the VM's own access, under
/// the console's lock, so that whole lines never cut it nor it them, once the transmit FIFO has
/// room again (el2visor's lines may have filled it since the guest read FR); its unfinished line
/// is tracked as [`write_partial`]'s.
pub fn write_through(owner: usize, b: u8, write: impl FnOnce()) {
    let g = LOCKING.load(Ordering::Acquire).then(|| LINE_LOCK.lock());
    if let (Some(_), Some(u)) = (&g, uart()) {
        take_line(&u, owner);
        // The guest saw room in the FIFO at its last FR read, before el2visor's lines took it.
        u.wait_tx_space();
        write();
        note_partial(owner, b);
    } else {
        write();
    }
}

/// Write without taking the lock: for the panic path, where the lock may be held by the CPU that
/// is panicking.
pub fn write_unlocked(s: &[u8]) {
    if let Some(u) = uart() {
        u.write_bytes(s);
    }
}

/// Wait for the UART to drain.
pub fn flush() {
    if let Some(u) = uart() {
        u.flush();
    }
}

/// A fixed line buffer; overlong lines are cut with a marker rather than split.
pub struct LineBuf {
    buf: [u8; 512],
    len: usize,
    truncated: bool,
}

impl LineBuf {
    pub const fn new() -> Self {
        Self { buf: [0; 512], len: 0, truncated: false }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn finish(&mut self) {
        if self.truncated {
            let mark = b"...\n";
            let at = self.len.min(self.buf.len() - mark.len());
            self.buf[at..at + mark.len()].copy_from_slice(mark);
            self.len = at + mark.len();
        } else if self.len == 0 || self.buf[self.len - 1] != b'\n' {
            if self.len == self.buf.len() {
                self.len -= 1;
            }
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 4 - self.len.min(self.buf.len() - 4);
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

/// Print one line (a newline is added) as a unit.
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    line.finish();
    write_raw(line.as_bytes());
}

/// [`print_line`] without the lock, for the fatal path (this CPU may be the one holding it).
pub fn print_line_unlocked(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    line.finish();
    write_unlocked(line.as_bytes());
}

/// x0..x30, four to a line, each line prefixed with `indent`. `locked`: serialised with other
/// lines (normal reports), or not (the fatal path, where the lock may be held by this CPU).
pub fn dump_gprs(x: &[u64; 31], indent: &str, locked: bool) {
    for i in (0..31).step_by(4) {
        let mut l = LineBuf::new();
        let _ = l.write_str(indent);
        for (r, v) in x.iter().enumerate().skip(i).take(4) {
            let _ = write!(l, "x{r:<2}={v:#018x} ");
        }
        let _ = l.write_str("\n");
        if locked {
            write_raw(l.as_bytes());
        } else {
            write_unlocked(l.as_bytes());
        }
    }
}

/// `println!` for el2visor: one whole line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::logging::print_line(format_args!($($arg)*)) };
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        print_line(format_args!("el2visor[{}] {}: {}", cpu::current(), level, r.args()));
    }
    fn flush(&self) {}
}

/// Install the `log` backend at `level`.
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
