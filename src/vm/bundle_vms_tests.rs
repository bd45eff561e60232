//! Host tests of the version-2 (several VMs) guest bundle.

use super::super::{bundle_crc, parse_any, AnyBundle, Bundle, CRC_OFFSET};
use super::*;
use alloc::string::ToString;
use proptest::prelude::*;

fn reseal(b: &mut [u8]) {
    let total = le64(b, 16) as usize;
    let crc = bundle_crc(&b[..total]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Entry `i`'s table offset.
fn entry(i: usize) -> usize {
    0x20 + 24 * i
}

const K1: [u8; 5000] = [0xaa; 5000];
const K2: [u8; 300] = [0xcc; 300];

/// Two VMs: "linux1" (2 vCPUs, 256 MiB, vpl011, kernel + initrd + cmdline) and "tiny" (1 vCPU,
/// 2 MiB, kernel + partial DT). Entries: 0 desc, 1 kernel, 2 initrd, 3 cmdline, 4 desc, 5 kernel,
/// 6 partial DT.
fn sample() -> Vec<u8> {
    build(&[
        VmParts { name: "linux1", cpus: 2, memory: 256 << 20, vpl011: true, kernel: &K1, initrd: Some(&[0xbb; 100]), partial_dt: None, cmdline: "console=ttyAMA0" },
        VmParts { name: "tiny", cpus: 1, memory: 2 << 20, vpl011: false, kernel: &K2, initrd: None, partial_dt: Some(&[0xd0; 64]), cmdline: "" },
    ])
}

#[test]
fn layout_is_as_documented() {
    let b = sample();
    assert_eq!(&b[..8], b"EL2VBNDL");
    assert_eq!(le32(&b, 8), 2);
    assert_eq!(le32(&b, 12), 7);
    let kinds: Vec<u32> = (0..7).map(|i| le32(&b, entry(i))).collect();
    assert_eq!(kinds, [5, 1, 2, 4, 5, 1, 6]);
    // The first descriptor at 0x1000: name, vCPUs, flags, RAM.
    assert_eq!(le64(&b, entry(0) + 8), 0x1000);
    assert_eq!(le64(&b, entry(0) + 16), 48);
    assert_eq!(&b[0x1000..0x1007], b"linux1\0");
    assert_eq!(le32(&b, 0x1020), 2);
    assert_eq!(le32(&b, 0x1024), 1);
    assert_eq!(le64(&b, 0x1028), 256 << 20);
    // Kernel right after it, 4 KiB aligned.
    assert_eq!(le64(&b, entry(1) + 8), 0x2000);
    assert_eq!(b.len() as u64, le64(&b, 16));
}

#[test]
fn parses_what_it_builds() {
    let mut b = sample();
    b.resize(b.len() + 100, 0);
    let p = VmsBundle::parse(&b).unwrap();
    assert_eq!(p.vms.len(), 2);
    let (a, t) = (&p.vms[0], &p.vms[1]);
    assert_eq!((a.name, a.cpus, a.memory, a.vpl011), ("linux1", 2, 256 << 20, true));
    assert_eq!(p.bytes(a.kernel), &K1[..]);
    assert_eq!(a.kernel.offset, 0x2000);
    assert_eq!(a.initrd.map(|s| p.bytes(s)), Some(&[0xbb; 100][..]));
    assert_eq!(a.cmdline, Some("console=ttyAMA0"));
    assert_eq!(a.partial_dt, None);
    assert_eq!((t.name, t.cpus, t.memory, t.vpl011), ("tiny", 1, 2 << 20, false));
    assert_eq!(p.bytes(t.kernel), &K2[..]);
    assert_eq!(t.partial_dt.map(|s| p.bytes(s)), Some(&[0xd0; 64][..]));
    assert_eq!((t.initrd, t.cmdline), (None, None));
    assert!(matches!(parse_any(&b), Ok(AnyBundle::Several(_))));
}

#[test]
fn versions_do_not_mix() {
    let b = sample();
    let e = Bundle::parse(&b).unwrap_err();
    assert_eq!(e, BundleError::SeveralVms);
    assert!(e.to_string().contains("several-VMs"));
    let one = super::super::build(&K1, None, "x");
    assert_eq!(VmsBundle::parse(&one), Err(BundleError::UnsupportedVersion { version: 1 }));
    assert!(matches!(parse_any(&one), Ok(AnyBundle::One(_))));
    // A version-1 bundle may not carry the new kinds, nor version 2 the old DT properties.
    let mut v1 = super::super::build(&K1, Some(&[1; 10]), "x");
    set_u32(&mut v1, entry(1), 6);
    reseal(&mut v1);
    assert_eq!(Bundle::parse(&v1), Err(BundleError::KindNotInVersion { kind: EntryKind::PartialDt, version: 1 }));
    let mut v2 = sample();
    set_u32(&mut v2, entry(6), 3);
    reseal(&mut v2);
    assert_eq!(VmsBundle::parse(&v2), Err(BundleError::KindNotInVersion { kind: EntryKind::DtProps, version: 2 }));
}

#[test]
fn rejects_bad_grouping() {
    // First entry a kernel.
    let mut f = sample();
    set_u32(&mut f, entry(0), 1);
    set_u32(&mut f, entry(1), 5);
    reseal(&mut f);
    assert_eq!(VmsBundle::parse(&f), Err(BundleError::FirstNotVm { kind: EntryKind::Kernel }));
    // linux1's kernel turned into a second initrd.
    let mut d = sample();
    set_u32(&mut d, entry(1), 2);
    reseal(&mut d);
    assert_eq!(
        VmsBundle::parse(&d).unwrap_err().to_string(),
        "guest bundle VM linux1 has more than one initrd entry"
    );
    // linux1's kernel and initrd turned into partial device trees.
    let mut n = sample();
    set_u32(&mut n, entry(2), 6);
    set_u32(&mut n, entry(1), 6);
    reseal(&mut n);
    assert_eq!(VmsBundle::parse(&n), Err(BundleError::VmDuplicate { vm: "linux1".into(), kind: EntryKind::PartialDt }));
    // tiny's kernel turned into an initrd: tiny has none.
    let mut k = sample();
    set_u32(&mut k, entry(5), 2);
    reseal(&mut k);
    assert_eq!(VmsBundle::parse(&k).unwrap_err().to_string(), "guest bundle VM tiny has no kernel entry");
    // linux1's kernel turned into a partial device tree: linux1 ends without a kernel.
    let mut l = sample();
    set_u32(&mut l, entry(1), 6);
    reseal(&mut l);
    assert_eq!(VmsBundle::parse(&l), Err(BundleError::VmNoKernel { vm: "linux1".into() }));
    // tiny's descriptor turned into a kernel: linux1 has two.
    let mut t = sample();
    set_u32(&mut t, entry(4), 1);
    set_u64(&mut t, entry(4) + 16, 48);
    reseal(&mut t);
    assert_eq!(VmsBundle::parse(&t), Err(BundleError::VmDuplicate { vm: "linux1".into(), kind: EntryKind::Kernel }));
}

#[test]
fn rejects_bad_descriptors() {
    let desc2 = le64(&sample(), entry(4) + 8) as usize;
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = sample();
        edit(&mut b);
        reseal(&mut b);
        VmsBundle::parse(&b).unwrap_err()
    };
    let bad = |why| BundleError::BadVm { vm: 1, why };
    assert_eq!(with(&|b| b[desc2..desc2 + 7].copy_from_slice(b"linux1\0")), BundleError::DuplicateName { name: "linux1".into() });
    assert_eq!(with(&|b| b[desc2..desc2 + 4].fill(0)), bad("its name is empty or has characters other than A-Z a-z 0-9 _ . -"));
    assert_eq!(with(&|b| b[desc2 + 1] = b' '), bad("its name is empty or has characters other than A-Z a-z 0-9 _ . -"));
    assert_eq!(with(&|b| b[desc2 + 5] = b'x'), bad("bytes after its name's NUL are not zero"));
    assert_eq!(with(&|b| b[desc2..desc2 + 32].fill(b'a')), bad("its name is not NUL terminated within 32 bytes"));
    assert_eq!(with(&|b| set_u32(b, desc2 + 0x20, 0)), bad("0 vCPUs"));
    assert_eq!(with(&|b| set_u32(b, desc2 + 0x24, 2)), bad("unknown flags (written by a newer tool?)"));
    assert_eq!(with(&|b| set_u64(b, desc2 + 0x28, 3 << 20)), bad("its RAM is not a non-zero multiple of 2 MiB"));
    assert_eq!(with(&|b| set_u64(b, desc2 + 0x28, 0)), bad("its RAM is not a non-zero multiple of 2 MiB"));
    assert_eq!(with(&|b| set_u64(b, entry(4) + 16, 47)), bad("its payload is not 48 bytes"));
    assert!(with(&|b| set_u64(b, entry(4) + 16, 47)).to_string().starts_with("guest bundle VM descriptor 1: "));
}

#[test]
fn rejects_bad_bounds_overlap_and_alignment() {
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = sample();
        edit(&mut b);
        reseal(&mut b);
        VmsBundle::parse(&b).unwrap_err()
    };
    // tiny's kernel onto linux1's kernel.
    assert!(matches!(with(&|b| set_u64(b, entry(5) + 8, 0x2000)), BundleError::Overlap { a: EntryKind::Kernel, b: EntryKind::Kernel, .. }));
    assert!(matches!(with(&|b| set_u64(b, entry(5) + 8, 0x2008)), BundleError::Misaligned { kind: EntryKind::Kernel, offset: 0x2008 }));
    assert!(matches!(with(&|b| set_u64(b, entry(6) + 16, 1 << 30)), BundleError::OutOfBounds { kind: EntryKind::PartialDt, .. }));
    assert!(matches!(with(&|b| set_u64(b, entry(0) + 8, 0)), BundleError::OutOfBounds { kind: EntryKind::Vm, .. }));
    assert!(matches!(with(&|b| { let at = le64(b, entry(3) + 8) as usize; b[at] = 0xff }), BundleError::BadCmdline));
    let mut c = sample();
    c[0x2000 + 9] ^= 4;
    assert!(matches!(VmsBundle::parse(&c), Err(BundleError::BadChecksum { .. })));
    assert!(matches!(VmsBundle::parse(&sample()[..100]), Err(BundleError::Truncated { .. })));
}

#[test]
fn counts_are_limited() {
    let k = [1u8; 10];
    let names: Vec<alloc::string::String> = (0..9).map(|i| alloc::format!("vm{i}")).collect();
    let vms: Vec<VmParts<'_>> = names.iter().map(|n| VmParts { name: n, cpus: 1, memory: 2 << 20, kernel: &k, ..VmParts::default() }).collect();
    assert_eq!(VmsBundle::parse(&build(&vms[..8])).unwrap().vms.len(), 8);
    assert_eq!(VmsBundle::parse(&build(&vms)), Err(BundleError::TooManyVms { count: 9 }));
    let mut z = build(&vms[..1]);
    set_u32(&mut z, 12, 65);
    reseal(&mut z);
    assert_eq!(VmsBundle::parse(&z), Err(BundleError::BadEntryCount { count: 65 }));
}

#[test]
fn names() {
    assert!(valid_name("a") && valid_name("linux-1.b_2") && valid_name(&"x".repeat(31)));
    assert!(!valid_name("") && !valid_name(&"x".repeat(32)) && !valid_name("a b") && !valid_name("a/b") && !valid_name("é"));
    let k = [1u8; 10];
    let long = "y".repeat(32);
    let b = build(&[VmParts { name: &long, cpus: 1, memory: 2 << 20, kernel: &k, ..VmParts::default() }]);
    assert!(matches!(VmsBundle::parse(&b), Err(BundleError::BadVm { vm: 0, .. })));
}

proptest! {
    #[test]
    fn round_trip(
        vms in proptest::collection::vec((
            "[a-z0-9_.-]{1,31}",
            1u32..8,
            1u64..512,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..5000),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5000)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            "[ -~]{0,100}",
        ), 1..=MAX_VMS),
    ) {
        let mut seen = Vec::new();
        let vms: Vec<_> = vms.into_iter().filter(|v| { let new = !seen.contains(&v.0); seen.push(v.0.clone()); new }).collect();
        let parts: Vec<VmParts<'_>> = vms.iter().map(|v| VmParts {
            name: &v.0, cpus: v.1, memory: v.2 << 21, vpl011: v.3, kernel: &v.4,
            initrd: v.5.as_deref(), partial_dt: v.6.as_deref(), cmdline: &v.7,
        }).collect();
        let b = build(&parts);
        let p = VmsBundle::parse(&b).unwrap();
        prop_assert_eq!(p.vms.len(), parts.len());
        for (got, want) in p.vms.iter().zip(&parts) {
            prop_assert_eq!((got.name, got.cpus, got.memory, got.vpl011), (want.name, want.cpus, want.memory, want.vpl011));
            prop_assert_eq!(p.bytes(got.kernel), want.kernel);
            prop_assert_eq!(got.initrd.map(|s| p.bytes(s)), want.initrd);
            prop_assert_eq!(got.partial_dt.map(|s| p.bytes(s)), want.partial_dt);
            prop_assert_eq!(got.cmdline, Some(want.cmdline).filter(|c| !c.is_empty()));
            prop_assert_eq!(got.kernel.offset % 4096, 0);
        }
    }

    #[test]
    fn any_single_byte_flip_is_caught(pos in 0usize..0x8000, bit in 0u8..8) {
        let mut b = sample();
        let pos = pos % b.len();
        b[pos] ^= 1 << bit;
        prop_assert!(VmsBundle::parse(&b).is_err());
    }
}

#[test]
fn one_vm_bundles_are_written_unchanged() {
    // Version 1 stays byte for byte what it was: the header says 1 and the kinds are 1, 2, 4.
    let b = super::super::build(&K1, Some(&[2; 3]), "c");
    assert_eq!((le32(&b, 8), le32(&b, 12)), (1, 3));
    assert_eq!([le32(&b, entry(0)), le32(&b, entry(1)), le32(&b, entry(2))], [1, 2, 4]);
}
