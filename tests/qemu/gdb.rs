//! Issue 14: el2visor's GDB stub, with `gdb-multiarch` in batch mode as the client, over QEMU
//! virt's second PL011 (`debug_uart=/pl011@9040000`, a TCP socket on the host). Against the probe
//! guest (with its ELF's symbols) and against Linux (addresses from the guest's /proc/kallsyms,
//! its memory checked against the Image file): threads, general and FP/SIMD registers read and
//! written back, guest virtual memory, a hardware breakpoint hit, three single steps, a software
//! breakpoint, a write and a read watchpoint, a single step over a store an access watchpoint
//! catches (probe guest), Ctrl-C, and then `detach` (the guest finishes
//! normally) or `kill` (el2visor ends the VM). A hardware breakpoint also stops a vCPU started
//! after the attach (the probe's `gdb_gate`). And `on_crash=debug`: a guest that panicked waits,
//! stopped, for GDB, which finds it stopped with SIGSEGV at the panic.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{image, probe_image, root, Qemu, Run};

/// Ctrl-C while the next `continue` runs, as a person types it: SIGINT to GDB, which sends the
/// interrupt byte. (GDB's own `interrupt` after `continue &` is not acted on in a batch script.)
const CTRL_C: &str = "shell (sleep 1; kill -INT $PPID) &\n";

/// The second PL011 QEMU virt has with two `-serial` options.
const DEBUG_UART: &str = "/pl011@9040000";

/// QEMU running in the background, its output collected as it comes.
struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    start: Instant,
}

impl Running {
    fn spawn(q: &Qemu) -> Self {
        let mut child = Command::new("qemu-system-aarch64")
            .args(q.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-aarch64 not found: run tests/setup.sh (make test does)");
        let out = Arc::new(Mutex::new(Vec::new()));
        for mut pipe in [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Running { child, out, start: Instant::now() }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Wait until the output holds `needle`; false after `secs` or when QEMU has exited.
    fn wait_for(&mut self, needle: &str, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if self.text().contains(needle) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.text().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Wait for QEMU to exit by itself (up to `secs`), then the whole run.
    fn finish(mut self, secs: u64) -> Run {
        let end = Instant::now() + Duration::from_secs(secs);
        let exited = loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break true;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        Run { output: self.text(), exited, elapsed: self.start.elapsed() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Run `gdb-multiarch -batch` with `script` (its commands, after the connection to `port`).
fn gdb(port: u16, script: &str, secs: u64) -> String {
    let file = root().join("target/qemu-tests/gdb").join(format!("script-{port}.gdb"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let head = format!(
        "set pagination off\nset confirm off\nset width 0\nset architecture aarch64\nset remotetimeout 30\n\
         target remote 127.0.0.1:{port}\n"
    );
    std::fs::write(&file, head + script).unwrap();
    let mut child = Command::new("gdb-multiarch")
        .args(["-nx", "-batch", "-x"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb-multiarch not found: run tests/setup.sh (make test does)");
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The values GDB printed as `$<n> = <value>`, in order.
fn values(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix('$').and_then(|r| r.split_once(" = ")).map(|(_, v)| v.trim().to_string()))
        .collect()
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not a hex value: {v:?}"))
}

/// Check `cond` or fail with both transcripts.
#[track_caller]
fn check(cond: bool, what: &str, g: &str, q: &str) {
    assert!(cond, "{what}\n--- gdb ---\n{g}\n--- QEMU ---\n{q}\n--- end ---");
}

fn with_debug_uart(q: &mut Qemu, port: u16) {
    let serial = format!("tcp:127.0.0.1:{port},server=on,wait=off");
    q.push(&["-serial", &serial]);
}

fn probe_elf() -> PathBuf {
    root().join("target/probe/target/aarch64-unknown-none/release/probe-guest")
}

/// The probe guest, attached to while it runs its probes (over in a few seconds, too soon for a
/// Ctrl-C after a `continue`: the Linux test has that); killed from GDB at the end.
#[test]
fn probe_guest() {
    probe(3);
}

/// The same on GICv2, where guest WFIs trap and a stop finds vCPUs idling at EL2 too.
#[test]
fn probe_guest_gic2() {
    probe(2);
}

/// The probe guest on QEMU virt (`-cpu max`, 2 vCPUs, GICv`gic`) with the GDB stub on the second
/// PL011 and `extra` on el2visor's command line, running once its output has `ready` (within
/// `secs`): QEMU, the port GDB connects to, the probe's ELF and where it runs (`VM probe: …
/// kernel at 0x70000000`: its ELF is linked at 0).
fn start_probe(gic: u32, extra: &str, ready: &str, secs: u64) -> (Running, u16, PathBuf, String) {
    let elf = probe_elf();
    assert!(elf.is_file(), "{} is missing: `make image` builds it", elf.display());
    let port = free_port();
    let mut q = Qemu::virt("max", 2, "1G", gic);
    q.kernel(&image()).append(&format!("debug_uart={DEBUG_UART}{extra}"));
    with_debug_uart(&mut q, port);
    let mut qemu = Running::spawn(&q);
    assert!(qemu.wait_for(ready, secs), "no `{ready}` line:\n{}", qemu.text());
    let text = qemu.text();
    let base = text
        .lines()
        .find_map(|l| l.split_once("kernel at ").map(|(_, r)| r.split(',').next().unwrap().trim().to_string()))
        .unwrap_or_else(|| panic!("no `kernel at` line:\n{text}"));
    (qemu, port, elf, base)
}

fn probe(gic: u32) {
    let (qemu, port, elf, base) = start_probe(gic, "", "el2visor: GDB stub on /pl011@9040000", 30);
    let script = format!(
        "add-symbol-file {elf} -o {base}\n\
         info threads\n\
         p/x $cpsr & 0xf\n\
         x/1wx {base}+0x38\n\
         set $old = $x9\nset $x9 = 0x5a5a5a5a12345678\np/x $x9\nset $x9 = $old\n\
         set $oldv = $v7.d.u[1]\nset $v7.d.u[1] = 0x1122334455667788\np/x $v7.d.u[1]\nset $v7.d.u[1] = $oldv\n\
         p/x $fpsr\n\
         info address probe_hvc\nhbreak probe_hvc\ncontinue\np/x $pc\n\
         stepi\np/x $pc\nstepi\np/x $pc\nstepi\np/x $pc\n\
         delete\nbreak probe_hvc\ncontinue\np/x $pc\ndelete\n\
         info address probe_guest::console::print_line\nhbreak *probe_guest::console::print_line\ncontinue\ndelete\n\
         set language c\nset $w = $sp - 16\nawatch *(unsigned long *)$w\nstepi\np/x $pc\ndelete\n\
         kill\n",
        elf = elf.display()
    );
    let g = gdb(port, &script, 60);
    let run = qemu.finish(30);
    let q = &run.output;
    let v = values(&g);
    check(v.len() == 10, &format!("expected 10 values, got {v:?}"), &g, q);
    // `Symbol "probe_hvc" is at 0x… in a file compiled without debugging.`
    let hvc = g
        .lines()
        .find_map(|l| l.strip_prefix("Symbol \"probe_hvc\" is at ").and_then(|r| r.split_whitespace().next()))
        .map(hex);
    check(hvc.is_some(), "GDB did not find probe_hvc in the probe's symbols", &g, q);
    let hvc = hvc.unwrap_or(0);
    check(g.contains("Thread 1.1 (VM probe vCPU 0)"), "no thread for vCPU 0", &g, q);
    check(v[0] == "0x5", "cpsr is not EL1h", &g, q);
    check(g.contains("0x644d5241"), "the Image magic `ARM\\x64` was not read at base + 0x38", &g, q);
    check(v[1] == "0x5a5a5a5a12345678", "x9 did not take the value written", &g, q);
    check(v[2] == "0x1122334455667788", "v7 did not take the value written", &g, q);
    check(g.contains("Hardware assisted breakpoint 1"), "no hardware breakpoint", &g, q);
    check(hex(&v[4]) == hvc, "the hardware breakpoint stopped elsewhere than probe_hvc", &g, q);
    let pcs: Vec<u64> = v[5..8].iter().map(|s| hex(s)).collect();
    check(pcs[0] != hex(&v[4]) && pcs[1] != pcs[0] && pcs[2] != pcs[1], "three steps did not move the PC each time", &g, q);
    check(hex(&v[8]) == hvc, "the software breakpoint stopped elsewhere than probe_hvc", &g, q);
    // print_line's first instruction, `str x30, [sp, #-16]!`, writes the watched word: a stepi
    // over it stops for the watchpoint (taken before the store; GDB then steps it with the
    // watchpoint out and reports it) and ends on the next instruction. An access watchpoint, as
    // GDB's `watch` says nothing when a write leaves the value as it was, and this one writes
    // the return address the previous call from the same place left there.
    let print_line = g
        .lines()
        .find_map(|l| l.strip_prefix("Symbol \"probe_guest::console::print_line\" is a function at address ").map(|r| r.trim_end_matches('.')))
        .map(hex);
    check(print_line.is_some(), "GDB did not find probe_guest::console::print_line", &g, q);
    // The watchpoint is named once when set and once when hit, then its value (`Value = ` if the
    // write left it as it was, else `Old value = ` and `New value = `).
    let hit = g.match_indices("Hardware access (read/write) watchpoint 4").nth(1).map(|(i, _)| &g[i..]);
    let reported = hit.is_some_and(|h| h.contains("\nValue = ") || h.contains("\nNew value = "));
    check(reported, "a stepi over a store to a watched word did not report the watchpoint", &g, q);
    check(hex(&v[9]) == print_line.unwrap_or(0) + 4, "the stepi over the watched store did not end on the next instruction", &g, q);
    check(run.has("el2visor: GDB attached") && run.has("el2visor: GDB killed VM probe"), "no attach or kill line", &g, q);
    check(run.has("STATS vm=probe ") && run.has("STATS exits="), "the killed VM did not end with its STATS", &g, q);
    check(run.exited, "QEMU did not power off after the only VM was killed", &g, q);
}

fn linux_guest() -> (PathBuf, PathBuf) {
    let dir = crate::harness::guests_dir();
    let (k, i) = (dir.join("Image"), dir.join("initramfs.cpio.gz"));
    for p in [&k, &i] {
        assert!(p.is_file(), "{} is missing: run `make guests`", p.display());
    }
    (k, i)
}

/// Whether the 48 bytes GDB showed at `va` (`x/6gx`: `__arm64_sys_write` up to its `ret`) are the Image's at an offset `va` can
/// have: the kernel runs at a 2 MiB-aligned virtual base (arm64 KASLR keeps that alignment) with
/// its text as in the Image file (not relocated). The first 8 bytes are left out: they are the
/// function's patchable entry (two NOPs in the Image), whose first one Linux rewrites at boot
/// for ftrace (`mov x9, x30`), as it does the next function's.
fn in_image(kernel: &std::path::Path, va: u64, g: &str) -> bool {
    let mut words = Vec::new();
    for l in g.lines() {
        let Some((addr, rest)) = l.split_once(':') else { continue };
        let Ok(a) = u64::from_str_radix(addr.trim_start_matches("0x"), 16) else { continue };
        if a >= va && a < va + 48 {
            words.extend(rest.split_whitespace().map(hex));
        }
    }
    let Ok(image) = std::fs::read(kernel) else { return false };
    if words.len() != 6 {
        return false;
    }
    let want: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).skip(8).collect();
    (0..)
        .map(|k| (va & 0x1f_ffff) as usize + (k << 21))
        .take_while(|off| off + 48 <= image.len())
        .any(|off| image[off + 8..off + 48] == want[..])
}

/// `EL2VISOR-KSYM <sym> <hex>` from the guest.
fn ksym(text: &str, sym: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.starts_with(&format!("EL2VISOR-KSYM {sym} ")))?;
    u64::from_str_radix(l.split_whitespace().nth(2)?, 16).ok()
}

/// Linux with two vCPUs, attached to once it has printed where `__arm64_sys_write` is (its
/// /proc/kallsyms: Debian's cloud kernel lists functions only, no data symbols such as `jiffies`,
/// so the memory read is checked against the Image file instead); detached, it finishes and
/// powers off.
/// A vCPU started while GDB is attached and the VM runs (the probe's `gdb_gate`: its second
/// vCPU stays off until GDB opens a gate in memory, then runs `probe_secondary_main` once): it
/// never stopped for the attach, and a hardware breakpoint on that function must still stop it,
/// in its own thread. Then `kill`.
#[test]
fn probe_secondary_started_while_attached() {
    for gic in [3, 2] {
        let (qemu, port, elf, base) = start_probe(gic, " guest_args=gdb_gate", "probe: gdb_gate: waiting", 60);
        let script = format!(
            "add-symbol-file {elf} -o {base}\n\
             set language c\ninfo address probe_secondary_main\nhbreak *probe_secondary_main\n\
             set *(unsigned long *)&PROBE_GATE = 1\ncontinue\np/x $pc\ninfo threads\n\
             kill\n",
            elf = elf.display()
        );
        let g = gdb(port, &script, 60);
        let run = qemu.finish(30);
        let q = &run.output;
        let main = g
            .lines()
            .find_map(|l| l.strip_prefix("Symbol \"probe_secondary_main\" is at ").and_then(|r| r.split_whitespace().next()))
            .map(hex);
        check(main.is_some(), "GDB did not find probe_secondary_main", &g, q);
        let v = values(&g);
        check(v.len() == 1 && main.is_some_and(|m| hex(&v[0]) == m), &format!("gic{gic}: the hardware breakpoint did not stop the vCPU started after the attach at probe_secondary_main"), &g, q);
        // The current thread (`* 2 Thread 1.2 (VM probe vCPU 1)`) is the started vCPU.
        check(g.lines().any(|l| l.starts_with('*') && l.contains("(VM probe vCPU 1)")), &format!("gic{gic}: the stop is not vCPU 1's"), &g, q);
        check(!run.has("gdb_gate_secondary PASS"), &format!("gic{gic}: the secondary ran through the breakpoint"), &g, q);
        check(run.has("el2visor: GDB killed VM probe") && run.exited, &format!("gic{gic}: no kill, or QEMU did not power off"), &g, q);
    }
}

#[test]
fn linux() {
    let (kernel, initrd) = linux_guest();
    let port = free_port();
    let mut q = Qemu::virt("max", 2, "1G", 3);
    q.kernel(&image()).append(&format!("debug_uart={DEBUG_UART}"));
    with_debug_uart(&mut q, port);
    // QEMU splits -device options at commas: `,,` is a literal one.
    let k = format!(
        "guest-loader,addr=0x49000000,kernel={},bootargs=console=ttyAMA0 el2visor.kallsyms=__arm64_sys_write el2visor.ticks=15",
        kernel.display()
    );
    let i = format!("guest-loader,addr=0x4c000000,initrd={}", initrd.display());
    q.push(&["-device", &k, "-device", &i]);
    let mut qemu = Running::spawn(&q);
    let ready = qemu.wait_for("EL2VISOR-KSYM __arm64_sys_write ", 120);
    let text = qemu.text();
    assert!(ready, "the guest did not print its symbols:\n{text}");
    let Some(write) = ksym(&text, "__arm64_sys_write") else {
        panic!("no address for __arm64_sys_write:\n{text}");
    };
    // An interrupt taken before the prologue runs writes (and reads back) the same stack word: the
    // kernel's exception entry puts pt_regs' frame record, and the entry code its other last
    // fields, just below the interrupted sp, and a tick that preempts or ends the call can add
    // more (20 were not always enough under a loaded host). Such hits are passed over (at most
    // 100) until the access is __arm64_sys_write's own, in this call or the guest's next write.
    let skip_irq = format!(
        "set $n = 0\nwhile ($pc < {write:#x} || $pc >= {end:#x}) && $n < 100\ncontinue\nset $n = $n + 1\nend\n",
        end = write + 64
    );
    let script = format!(
        "info threads\n\
         info registers x0 sp pc cpsr\n\
         p/x $v0.d.u[0]\n\
         x/6gx {write:#x}\n\
         hbreak *{write:#x}\ncontinue\np/x $pc\n\
         stepi\np/x $pc\nstepi\np/x $pc\nstepi\np/x $pc\n\
         delete\n\
         set $w = $sp - 16\nwatch *(unsigned long *)$w\ncontinue\n{SKIP_IRQ}p/x $pc\ndelete\n\
         rwatch *(unsigned long *)$w\ncontinue\n{SKIP_IRQ}p/x $pc\ndelete\n\
         break *{write:#x}\ncontinue\np/x $pc\ndelete\n\
         {CTRL_C}continue\ninfo threads\n\
         detach\n",
        SKIP_IRQ = skip_irq
    );
    // Up to 100 passed-over hits, each a stop and a resume of the VM: under a loaded host (the
    // suite runs two QEMUs on two cores) 61 took the whole minute this once had.
    let g = gdb(port, &script, 150);
    let run = qemu.finish(90);
    let q = &run.output;
    let v = values(&g);
    check(v.len() == 8, &format!("expected 8 values, got {v:?}"), &g, q);
    check(g.contains("(VM guest vCPU 0)") && g.contains("(VM guest vCPU 1)"), "not one thread per vCPU", &g, q);
    check(in_image(&kernel, write, &g), "x/6gx of __arm64_sys_write does not show its bytes in the Image", &g, q);
    check(hex(&v[1]) == write, "the hardware breakpoint did not stop at __arm64_sys_write", &g, q);
    let pcs: Vec<u64> = v[2..5].iter().map(|s| hex(s)).collect();
    check(pcs == [write + 4, write + 8, write + 12], "three steps from the function entry are not its next three instructions", &g, q);
    // The prologue's `stp x29, x30, [sp, #-16]!` (a few instructions on) writes the watched word.
    check(g.contains("Hardware watchpoint 2") && g.contains("New value"), "the watchpoint on the stack did not fire", &g, q);
    check(hex(&v[5]) > write && hex(&v[5]) < write + 64, "the watchpoint did not stop in __arm64_sys_write's prologue", &g, q);
    // Its epilogue's `ldp x29, x30, [sp], #16` reads it back.
    check(g.contains("Hardware read watchpoint 3"), "the read watchpoint on the stack did not fire", &g, q);
    check(hex(&v[6]) > hex(&v[5]) && hex(&v[6]) < write + 64, "the read watchpoint did not stop in __arm64_sys_write's epilogue", &g, q);
    check(hex(&v[7]) == write, "the software breakpoint did not stop at __arm64_sys_write", &g, q);
    check(g.contains("received signal SIGINT"), "Ctrl-C (interrupt) did not stop the guest", &g, q);
    check(g.contains("detached"), "GDB did not detach", &g, q);
    check(run.exited, "QEMU did not exit by itself after the detach", &g, q);
    check(run.has("EL2VISOR-GUEST-OK cpus=2") && run.has("STATS exits="), "the guest did not finish normally", &g, q);
    check(!run.has("Kernel panic") && !run.has("Internal error"), "the guest crashed", &g, q);
}

/// A Pi 4's PL011s share one 4 KiB page with its console: while a VM gets the console,
/// `debug_uart=` UART3 is refused in one line and the guest keeps its console (the probe runs
/// through); with `console=hyp` the page is el2visor's and the stub starts.
#[test]
fn raspi4b_uart3_shares_the_console_page() {
    const UART3: &str = "debug_uart=/soc/serial@7e201600";
    let run = Qemu::raspi4b().kernel(&image()).append(UART3).timeout(120).stop_on("el2visor: halted").run();
    run.check(
        run.has("el2visor: debug_uart=/soc/serial@7e201600: /soc/serial@7e201000 shares its 4 KiB page")
            && !run.has("GDB stub on"),
        "UART3 beside a passed-through console was not refused",
    );
    run.check(run.has("PROBE DONE pass=") && run.has("fail=0"), "the guest lost its console or a probe failed");
    let args = format!("{UART3} console=hyp");
    let run = Qemu::raspi4b().kernel(&image()).append(&args).timeout(120).stop_on("el2visor: halted").run();
    run.check(run.has("el2visor: GDB stub on /soc/serial@7e201600 (115200 8N1)"), "no stub on UART3 with console=hyp");
}

/// `on_crash=debug` with the stub: the probe guest in its `panic` mode (a guest-loader module, as
/// crash.rs boots it) writes PANICKED to its pvpanic device; el2visor prints the panic report and
/// hands the stopped VM to the stub, where GDB, attaching, finds it stopped with SIGSEGV at the
/// panic, in `probe_guest::probes::panic::run` just after the pvpanic write. `kill` ends the VM.
#[test]
fn a_panicked_guest_waits_for_gdb_with_sigsegv() {
    let elf = probe_elf();
    assert!(elf.is_file(), "{} is missing: `make image` builds it", elf.display());
    let port = free_port();
    let mut q = Qemu::virt("max", 2, "1G", 3);
    let loader = format!("guest-loader,addr=0x49000000,kernel={},bootargs=panic", probe_image().display());
    q.kernel(&image()).append(&format!("on_crash=debug debug_uart={DEBUG_UART}")).push(&["-device", &loader]);
    with_debug_uart(&mut q, port);
    let mut qemu = Running::spawn(&q);
    let waiting = qemu.wait_for("el2visor: VM guest stopped (on_crash=debug), waiting for a debugger", 60);
    let text = qemu.text();
    assert!(waiting, "the panicked VM is not waiting for a debugger:\n{text}");
    assert!(text.contains("el2visor: GDB stub on /pl011@9040000"), "no GDB stub line:\n{text}");
    let base = text
        .lines()
        .find_map(|l| l.split_once("kernel at ").map(|(_, r)| r.split(',').next().unwrap().trim().to_string()))
        .unwrap_or_else(|| panic!("no `kernel at` line:\n{text}"));
    // Held, the guest must not get past the write (its next line says it did).
    std::thread::sleep(Duration::from_secs(1));
    let script = format!(
        "add-symbol-file {elf} -o {base}\n\
         info program\n\
         info threads\n\
         p/x $pc\n\
         p/x $cpsr & 0xf\n\
         info symbol $pc\n\
         info address probe_guest::probes::panic::run\n\
         kill\n",
        elf = elf.display()
    );
    let g = gdb(port, &script, 60);
    let run = qemu.finish(30);
    let q = &run.output;
    let v = values(&g);
    check(v.len() == 2, &format!("expected 2 values, got {v:?}"), &g, q);
    check(run.has("el2visor: VM guest panicked (pvpanic PANICKED)"), "no panic report", &g, q);
    check(run.has("el2visor: VM guest: on_crash=debug: "), "no on_crash=debug line", &g, q);
    check(!run.has("still running after the pvpanic write"), "the guest ran on after the panic", &g, q);
    check(g.contains("It stopped with signal SIGSEGV"), "GDB was not told SIGSEGV", &g, q);
    check(g.contains("(VM guest vCPU 0)"), "no thread for vCPU 0", &g, q);
    check(v[1] == "0x5", "cpsr is not EL1h", &g, q);
    let pc = hex(&v[0]);
    // `Symbol "probe_guest::probes::panic::run" is a function at address 0x….` (the probe's ELF
    // has line tables; `is at 0x… in a file compiled without debugging.` without them).
    let run_fn = g
        .lines()
        .find(|l| l.starts_with("Symbol \"probe_guest::probes::panic::run\" is "))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("0x")))
        .map(|w| hex(w.trim_end_matches('.')));
    check(run_fn.is_some(), "GDB did not find probe_guest::probes::panic::run in the probe's symbols", &g, q);
    let run_fn = run_fn.unwrap_or(0);
    // `probe_guest::probes::panic::run::h<hash> + 168 in section .text`: just after the pvpanic
    // store (el2visor completed the emulated write before the crash check).
    check(
        pc > run_fn
            && g.lines().any(|l| l.starts_with("probe_guest::probes::panic::run") && l.contains(" + ") && l.ends_with(" in section .text")),
        &format!("pc {pc:#x} is not in probe_guest::probes::panic::run (at {run_fn:#x})"),
        &g,
        q,
    );
    check(run.has("el2visor: GDB attached") && run.has("el2visor: GDB killed VM guest"), "no attach or kill line", &g, q);
    check(run.has("STATS vm=guest ") && run.has("STATS exits="), "the killed VM did not end with its STATS", &g, q);
    check(run.exited, "QEMU did not power off after the only VM was killed", &g, q);
}
