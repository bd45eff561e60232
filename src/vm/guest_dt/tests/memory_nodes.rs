//! Memory nodes as the platform counts them (`platform::is_memory_node`), by `device_type` as
//! well as by name: each is the host's RAM, replaced by the VM's own and never copied.

use super::*;

/// A host whose RAM is in a node not named `memory` (`device_type = "memory"`), beside a
/// `memory@…` node without `device_type`.
fn host() -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("ram@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x8000_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("memory@c0000000").unwrap();
    w.property_array_u64("reg", &[0xc000_0000, 0x4000_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,cortex-a15-gic").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x801_0000, 0x1_0000]).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn a_memory_node_by_device_type_is_replaced_not_copied() {
    let spec = GuestDtSpec { disable_paths: vec![], ..virt_spec(V2) };
    let g = nodes(&generate(&host(), &spec).unwrap());
    let memory: Vec<&String> =
        g.keys().filter(|k| k.starts_with("/memory") || prop(&g, k, "device_type") == Some(b"memory\0")).collect();
    assert_eq!(memory, vec!["/memory@41000000"], "host RAM reached the guest");
    assert_eq!(prop(&g, "/memory@41000000", "reg").unwrap(), cells(&[0, 0x4100_0000, 0, 0x3f00_0000]));
}
