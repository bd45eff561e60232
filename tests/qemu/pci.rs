//! Issue 11: real devices in guests. Linux under el2visor reads a virtio-blk disk (a raw image with
//! known content) and pings QEMU's user-network gateway through virtio-net, on PCI (INTx on gic2
//! and gic3, GICv2m MSIs on gic2, MSI-X through el2visor's virtual ITS on gic3) and on
//! virtio-mmio, cortex-a72 and max. The test initramfs's
//! `el2visor.virtio/disk/net` actions load the drivers, read the disk and ping, then print every
//! virtio line of /proc/interrupts, which shows whether MSIs or INTx carried them. And the DMA
//! policy: QEMU's fw_cfg is given to no VM, and a domain (not identity mapped, not trusted) that
//! asks for a virtio-mmio transport does not get it: the log names it, the domain boots without it.

use std::path::Path;

use crate::harness::{guest_file, image, scratch, Qemu, Run};

const KERNEL_ADDR: &str = "0x49000000";
const INITRD_ADDR: &str = "0x4c000000";
const MARKER: &str = "EL2VISOR-GUEST-OK ";



/// A 4 MiB raw disk whose first line is `content`.
pub(crate) fn disk(dir: &Path, content: &str) -> String {
    let p = dir.join("disk.img");
    let mut bytes = format!("{content}\n").into_bytes();
    bytes.resize(4 << 20, 0);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Pci,
    Mmio,
}

/// How the guest's virtio interrupts must arrive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Irqs {
    /// Level-triggered GIC SPIs (PCI INTx).
    Level,
    /// GIC SPIs, not MSIs (virtio-mmio's own lines, which QEMU's DT makes edge-triggered).
    Spi,
    /// MSIs (through the GICv2m frame).
    Msi,
    /// MSI-X through el2visor's virtual ITS (LPIs).
    ItsMsi,
}

struct Case {
    name: &'static str,
    gic: u32,
    cpu: &'static str,
    transport: Transport,
    /// Extra guest kernel arguments (`pci=nomsi` forces INTx where MSIs exist).
    guest_args: &'static str,
    /// el2visor's command line (`its=off`: no virtual ITS, so the guest DT names no MSI
    /// controller and Linux uses INTx).
    el2visor_args: &'static str,
    irqs: Irqs,
}

fn run_case(c: &Case) -> Run {
    let dir = scratch(&format!("pci-{}", c.name));
    let content = format!("EL2VISOR-DISK-DATA {} {}", c.name, std::process::id());
    let img = disk(&dir, &content);
    let (blk, net) = match c.transport {
        Transport::Pci => ("virtio-blk-pci", "virtio-net-pci"),
        Transport::Mmio => ("virtio-blk-device", "virtio-net-device"),
    };
    let mut q = Qemu::virt(c.cpu, 2, "1G", c.gic);
    q.kernel(&image()).append(c.el2visor_args).timeout(300);
    let bootargs = format!("console=ttyAMA0 el2visor.virtio=1 el2visor.disk=vda el2visor.net=eth0 {}", c.guest_args);
    let kernel = format!("guest-loader,addr={KERNEL_ADDR},kernel={},bootargs={}", guest_file("Image"), bootargs.trim());
    let initrd = format!("guest-loader,addr={INITRD_ADDR},initrd={}", guest_file("initramfs.cpio.gz"));
    let drive = format!("if=none,file={img},format=raw,id=d0");
    q.push(&["-device", &kernel, "-device", &initrd]);
    q.push(&["-drive", &drive, "-device", &format!("{blk},drive=d0")]);
    q.push(&["-netdev", "user,id=n0", "-device", &format!("{net},netdev=n0")]);
    let r = q.run();
    r.check(r.has(&format!("EL2VISOR-DISK {content}")), "the guest did not read the disk's content");
    r.check(r.has("EL2VISOR-PING ok"), "the guest could not ping the gateway 10.0.2.2");
    let irq: Vec<&str> = r.lines().filter_map(|l| l.strip_prefix("EL2VISOR-IRQ ")).collect();
    r.check(!irq.is_empty(), "no virtio interrupt lines in /proc/interrupts");
    // Every virtio interrupt that fired came the expected way (counts are per-CPU columns).
    let fired = |l: &str| l.split_whitespace().skip(1).take_while(|w| w.parse::<u64>().is_ok()).any(|w| w != "0");
    r.check(irq.iter().any(|l| fired(l)), &format!("no virtio interrupt ever fired: {irq:?}"));
    match c.irqs {
        Irqs::ItsMsi => r.check(
            irq.iter().all(|l| l.contains(" ITS-MSI ") && l.contains(" Edge ")),
            &format!("not every virtio interrupt is an ITS MSI: {irq:?}"),
        ),
        Irqs::Msi => r.check(irq.iter().all(|l| l.contains(" MSI ") && l.contains(" Edge ")), &format!("not every virtio interrupt is an MSI: {irq:?}")),
        Irqs::Level => r.check(irq.iter().all(|l| !l.contains("MSI") && l.contains(" Level ")), &format!("not every virtio interrupt is a level SPI: {irq:?}")),
        Irqs::Spi => r.check(irq.iter().all(|l| !l.contains("MSI") && l.contains(" GIC")), &format!("not every virtio interrupt is a GIC SPI: {irq:?}")),
    }
    r.check(!r.has("WARNING: CPU"), "the guest kernel warned");
    r.check(r.has("withholding /fw-cfg@9020000"), "el2visor did not say it withholds fw_cfg");
    r.check(r.has(MARKER), "no marker from the guest");
    r.check(r.line("STATS exits=").is_some(), "no final STATS line");
    r.check(r.exited, "QEMU did not exit after the guest powered off");
    r
}

/// GICv2m: the frame is the VM's, its MSIs are SPIs the vGIC routes.
fn v2m_case(name: &'static str, cpu: &'static str) {
    let r = run_case(&Case { name, gic: 2, cpu, transport: Transport::Pci, guest_args: "", el2visor_args: "", irqs: Irqs::Msi });
    r.check(r.has("GICv2m frame /intc@8000000/v2m@8020000 passed through with SPIs"), "el2visor did not pass the GICv2m frame");
}

#[test]
fn pci_gic2_max_msi_through_the_v2m_frame() {
    v2m_case("gic2-max-msi", "max");
}

#[test]
fn pci_gic2_cortex_a72_msi_through_the_v2m_frame() {
    v2m_case("gic2-a72-msi", "cortex-a72");
}

#[test]
fn pci_gic2_cortex_a72_intx() {
    run_case(&Case { name: "gic2-a72-intx", gic: 2, cpu: "cortex-a72", transport: Transport::Pci, guest_args: "pci=nomsi", el2visor_args: "", irqs: Irqs::Level });
}

#[test]
fn pci_gic2_max_intx() {
    run_case(&Case { name: "gic2-max-intx", gic: 2, cpu: "max", transport: Transport::Pci, guest_args: "pci=nomsi", el2visor_args: "", irqs: Irqs::Level });
}

#[test]
fn pci_gic3_cortex_a72_intx() {
    run_case(&Case { name: "gic3-a72-intx", gic: 3, cpu: "cortex-a72", transport: Transport::Pci, guest_args: "pci=nomsi", el2visor_args: "", irqs: Irqs::Level });
}

#[test]
fn pci_gic3_max_intx() {
    run_case(&Case { name: "gic3-max-intx", gic: 3, cpu: "max", transport: Transport::Pci, guest_args: "pci=nomsi", el2visor_args: "", irqs: Irqs::Level });
}

/// `its=off`: no virtual ITS, the guest DT has the ITS disabled and no `msi-map`, and Linux
/// falls back to INTx by itself.
#[test]
fn pci_gic3_cortex_a72_its_off_falls_back_to_intx() {
    let r = run_case(&Case { name: "gic3-a72-its-off", gic: 3, cpu: "cortex-a72", transport: Transport::Pci, guest_args: "", el2visor_args: "its=off", irqs: Irqs::Level });
    r.check(!r.has("virtual ITS at"), "el2visor gave a virtual ITS despite its=off");
}

/// The virtual ITS: the guest's ITS commands are mirrored on the physical ITS and its MSI-X
/// vectors arrive as LPIs (`ITS-MSI` lines in /proc/interrupts), on both vCPUs' collections.
fn its_case(name: &'static str, cpu: &'static str) {
    let r = run_case(&Case { name, gic: 3, cpu, transport: Transport::Pci, guest_args: "", el2visor_args: "", irqs: Irqs::ItsMsi });
    r.check(r.has("VM guest: virtual ITS at 0x8080000"), "el2visor did not give the VM a virtual ITS");
    r.check(r.has("PCI/MSI: /intc@8000000/its@8080000 domain created"), "the guest did not find the ITS");
    r.check(!r.has("virtual ITS: command"), "a guest command was refused");
}

#[test]
fn pci_gic3_cortex_a72_msi_through_the_virtual_its() {
    its_case("gic3-a72-its", "cortex-a72");
}

#[test]
fn pci_gic3_max_msi_through_the_virtual_its() {
    its_case("gic3-max-its", "max");
}

/// CPU hotplug under device interrupts: the guest pins every virtio interrupt to CPU 1 and takes
/// CPU 1 offline (PSCI CPU_OFF) and online (CPU_ON) again, ten times, while pings run; Linux
/// moves the interrupts to CPU 0 first, and one that arrived for CPU 1 in between must follow
/// them (`gic::virt::off`). Then the network still answers, with both CPUs online.
fn hotplug_case(name: &'static str, cpu: &'static str, guest_args: &'static str, irqs: Irqs) {
    let r = run_case(&Case { name, gic: 3, cpu, transport: Transport::Pci, guest_args, el2visor_args: "", irqs });
    r.check(r.has("EL2VISOR-HOTPLUG ok rounds=10 online=0-1"), "CPU 1 did not go offline and online again with the device still working");
    r.check(!r.has("failed to come online") && !r.has("CPU1: failed"), "the guest could not bring CPU 1 back");
}

#[test]
fn pci_gic3_max_intx_cpu_hotplug() {
    hotplug_case("gic3-max-intx-hotplug", "max", "pci=nomsi el2visor.hotplug=10", Irqs::Level);
}

#[test]
fn pci_gic3_cortex_a72_its_cpu_hotplug() {
    hotplug_case("gic3-a72-its-hotplug", "cortex-a72", "el2visor.hotplug=10", Irqs::ItsMsi);
}

#[test]
fn mmio_gic2_cortex_a72() {
    run_case(&Case { name: "mmio-gic2-a72", gic: 2, cpu: "cortex-a72", transport: Transport::Mmio, guest_args: "", el2visor_args: "", irqs: Irqs::Spi });
}

#[test]
fn mmio_gic3_max() {
    run_case(&Case { name: "mmio-gic3-max", gic: 3, cpu: "max", transport: Transport::Mmio, guest_args: "", el2visor_args: "", irqs: Irqs::Spi });
}

#[test]
fn mmio_gic2_max() {
    run_case(&Case { name: "mmio-gic2-max", gic: 2, cpu: "max", transport: Transport::Mmio, guest_args: "", el2visor_args: "", irqs: Irqs::Spi });
}

#[test]
fn mmio_gic3_cortex_a72() {
    run_case(&Case { name: "mmio-gic3-a72", gic: 3, cpu: "cortex-a72", transport: Transport::Mmio, guest_args: "", el2visor_args: "", irqs: Irqs::Spi });
}

/// A domain's partial device tree asking for QEMU virt's first virtio-mmio transport.
const VIRTIO_PARTIAL: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    passthrough {
        compatible = "simple-bus";
        ranges;
        #address-cells = <2>;
        #size-cells = <2>;
        virtio_mmio@a000000 {
            compatible = "virtio,mmio";
            reg = <0x0 0xa000000 0x0 0x200>;
            interrupts = <0 16 1>;
            interrupt-parent = <65000>;
            dma-coherent;
            xen,reg = <0x0 0xa000000 0x0 0x1000 0x0 0xa000000>;
            xen,path = "/virtio_mmio@a000000";
        };
    };
};
"#;

#[test]
fn a_domain_is_refused_a_dma_master_it_asks_for() {
    let dir = scratch("pci-domu-withheld");
    let (src, dtb) = (dir.join("virtio.dts"), dir.join("virtio.dtb"));
    crate::harness::compile_dts(VIRTIO_PARTIAL, &src, &dtb);
    let machine = "-M virt,virtualization=on,gic-version=3 -cpu cortex-a72 -smp 2 -m 1G";
    let (img, initrd) = (guest_file("Image"), guest_file("initramfs.cpio.gz"));
    let vm = format!("domU1={img}:{initrd}:1:256M:console=ttyAMA0:vpl011,dtb={},pt=/virtio_mmio@a000000", dtb.display());
    let extra = crate::harness::dom0less_args(&dir, machine, &[vm]);
    let mut q = Qemu::bare();
    q.push(&machine.split_whitespace().collect::<Vec<_>>()).kernel(&image()).append("loglevel=info").timeout(240);
    q.push(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    let r = q.run();
    r.check(
        r.has("VM domU1: withholding /virtio_mmio@a000000: masters DMA with no SMMU stream and the VM is not identity mapped"),
        "el2visor did not name the withheld device",
    );
    let dt = r.lines().find_map(|l| l.strip_prefix("(domU1) EL2VISOR-DT ")).unwrap_or_default();
    r.check(r.has(&format!("(domU1) {MARKER}")), "domU1 did not boot without the device");
    r.check(!dt.contains("virtio_mmio"), &format!("domU1's DT still has the withheld device: {dt}"));
    r.check(r.has("STATS vm=domU1 "), "no STATS line for domU1");
    r.check(r.exited, "QEMU did not exit after the domain powered off");
}
