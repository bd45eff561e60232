//! Property tests: mutated and truncated device trees give errors or platforms, never panics.

#![forbid(unsafe_code)]

use std::vec::Vec;

use proptest::prelude::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

use super::early::EarlyInfo;
use super::*;

/// A Pi-shaped tree built in memory: a bus with ranges, a GIC-400, spin-table CPUs, a console
/// behind an alias, /memreserve/, and multiboot modules.
fn sample() -> Vec<u8> {
    let mut w =
        FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0, 0x1000).unwrap()]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    w.property_string("model", "sample").unwrap();
    let a = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/soc/serial@7e201000")
        .unwrap();
    w.end_node(a).unwrap();
    let c = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "serial0:115200n8")
        .unwrap();
    w.property_string("bootargs", "loglevel=info").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let m = w.begin_node("module@2000000").unwrap();
    w.property_string_list(
        "compatible",
        vec!["multiboot,kernel".into(), "multiboot,module".into()],
    )
    .unwrap();
    w.property_array_u32("reg", &[0, 0x200_0000, 0x100_0000])
        .unwrap();
    w.end_node(m).unwrap();
    w.end_node(c).unwrap();
    let mem = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x3c00_0000]).unwrap();
    w.end_node(mem).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let n = w.begin_node(&std::format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_array_u32("cpu-release-addr", &[0, 0xd8 + 8 * i])
            .unwrap();
        w.end_node(n).unwrap();
    }
    w.end_node(cpus).unwrap();
    let t = w.begin_node("timer").unwrap();
    w.property_string("compatible", "arm,armv8-timer").unwrap();
    w.property_array_u32(
        "interrupts",
        &[1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08],
    )
    .unwrap();
    w.end_node(t).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_string("compatible", "simple-bus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32(
        "ranges",
        &[
            0x7e00_0000,
            0,
            0xfe00_0000,
            0x180_0000,
            0x4000_0000,
            0,
            0xff80_0000,
            0x80_0000,
        ],
    )
    .unwrap();
    let u = w.begin_node("serial@7e201000").unwrap();
    w.property_string_list(
        "compatible",
        vec!["arm,pl011".into(), "arm,primecell".into()],
    )
    .unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.property_array_u32("interrupts", &[0, 121, 4]).unwrap();
    w.end_node(u).unwrap();
    let g = w.begin_node("interrupt-controller@40041000").unwrap();
    w.property_string("compatible", "arm,gic-400").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_array_u32(
        "reg",
        &[
            0x4004_1000,
            0x1000,
            0x4004_2000,
            0x2000,
            0x4004_4000,
            0x2000,
            0x4004_6000,
            0x2000,
        ],
    )
    .unwrap();
    w.property_array_u32("interrupts", &[1, 9, 0xf04]).unwrap();
    w.property_u32("phandle", 1).unwrap();
    w.end_node(g).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn sample_parses() {
    let d = sample();
    let p = Platform::from_dtb(&d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gic.unwrap().dist(), PaRange::new(0xff84_1000, 0x1000));
    assert_eq!(p.console.unwrap().base.raw(), 0xfe20_1000);
    assert_eq!(p.cpus.len(), 4);
    assert_eq!(p.chosen.modules[0].kind, ModuleKind::Kernel);
    assert_eq!(p.reserved[0].source, ReservedSource::MemReserve);
}

/// Parses with every entry point; the only requirement is that nothing panics.
fn parse_all(d: &[u8]) {
    let _ = dtb_size(d);
    let _ = EarlyInfo::from_dtb(d);
    if let Err(e) = Platform::from_dtb(d) {
        // Displaying must not panic either.
        let _ = std::format!("{e}");
    }
}

fn mutate(mut d: Vec<u8>, flips: &[(usize, u8)], cut: usize, fix_size: bool) -> Vec<u8> {
    for &(at, x) in flips {
        let i = at % d.len();
        d[i] ^= x;
    }
    d.truncate(cut.max(1).min(d.len()));
    if fix_size && d.len() >= 8 {
        // Keep the header consistent with the cut so the walk goes deep instead of stopping early.
        let len = (d.len() as u32).to_be_bytes();
        d[4..8].copy_from_slice(&len);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_sample_never_panics(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
        cut in any::<usize>(),
        fix_size in any::<bool>(),
    ) {
        let d = sample();
        let full = d.len();
        let cut = if fix_size { cut } else { full - cut % 64 };
        parse_all(&mutate(d, &flips, cut, fix_size));
    }

    #[test]
    fn mutated_struct_words_never_panic(
        words in proptest::collection::vec((any::<usize>(), any::<u32>()), 1..4),
    ) {
        // Overwrite whole aligned words of the structure block with arbitrary values (tokens,
        // lengths, name offsets, cell counts), which byte flips rarely produce.
        let mut d = sample();
        let off = u32::from_be_bytes([d[8], d[9], d[10], d[11]]) as usize;
        let size = u32::from_be_bytes([d[36], d[37], d[38], d[39]]) as usize;
        for (at, v) in words {
            let i = off + (at % (size / 4)) * 4;
            d[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        parse_all(&d);
    }

    #[test]
    fn mutated_pi_dtb_never_panics(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let d = super::tests_real::load("bcm2711-rpi-4-b.dtb");
        let len = d.len();
        parse_all(&mutate(d, &flips, len, false));
    }
}
