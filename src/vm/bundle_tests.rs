//! Host tests of the guest bundle format.

use super::*;
use alloc::string::ToString;
use proptest::prelude::*;

/// Recompute the checksum after a test edits a bundle on purpose.
fn reseal(b: &mut [u8]) {
    let total = le64(b, 16) as usize;
    let crc = bundle_crc(&b[..total]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn sample() -> Vec<u8> {
    build(
        &[0xaa; 5000],
        Some(&[0xbb; 100]),
        "console=ttyAMA0 rdinit=/init",
    )
}

#[test]
fn crc_is_the_zlib_crc32() {
    assert_eq!(!crc_update(!0, b"123456789"), 0xcbf4_3926);
}

#[test]
fn layout_is_as_documented() {
    let b = sample();
    assert_eq!(&b[..8], b"EL2VBNDL");
    assert_eq!(le32(&b, 8), 1);
    assert_eq!(le32(&b, 12), 3);
    // kernel at 0x1000 (5000 bytes), initrd at 0x3000, command line at 0x4000.
    let entry = |i: usize| {
        (
            le32(&b, 0x20 + 24 * i),
            le64(&b, 0x28 + 24 * i),
            le64(&b, 0x30 + 24 * i),
        )
    };
    assert_eq!(entry(0), (1, 0x1000, 5000));
    assert_eq!(entry(1), (2, 0x3000, 100));
    assert_eq!(entry(2), (4, 0x4000, 28));
    assert_eq!(le64(&b, 16), 0x4000 + 28);
    assert_eq!(b.len() as u64, le64(&b, 16));
}

#[test]
fn parses_what_it_builds_and_tolerates_padding() {
    let mut b = sample();
    b.resize(b.len() + 4096, 0);
    let p = Bundle::parse(&b).unwrap();
    assert_eq!(p.kernel, &[0xaa; 5000][..]);
    assert_eq!(p.initrd, Some(&[0xbb; 100][..]));
    assert_eq!(p.cmdline, Some("console=ttyAMA0 rdinit=/init"));
    assert_eq!(p.dt_props, None);
    assert!(is_bundle(&b));
}

#[test]
fn rejects_truncation_magic_version_and_corruption() {
    let b = sample();
    assert!(matches!(
        Bundle::parse(&b[..b.len() - 1]),
        Err(BundleError::Truncated { .. })
    ));
    assert!(matches!(
        Bundle::parse(&b[..12]),
        Err(BundleError::Truncated { .. })
    ));
    assert_eq!(
        Bundle::parse(b"hello, world, this is not a bundle at all"),
        Err(BundleError::BadMagic)
    );
    let mut v = b.clone();
    v[8] = 3;
    assert_eq!(
        Bundle::parse(&v),
        Err(BundleError::UnsupportedVersion { version: 3 })
    );
    let mut c = b.clone();
    c[0x1000 + 17] ^= 1;
    let e = Bundle::parse(&c).unwrap_err();
    assert!(matches!(e, BundleError::BadChecksum { .. }));
    assert!(e.to_string().contains("corrupt"));
    let mut z = b.clone();
    z[12..16].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        Bundle::parse(&z),
        Err(BundleError::BadEntryCount { count: 0 })
    );
}

#[test]
fn rejects_bad_entries() {
    // The initrd entry moved onto the kernel's payload.
    let mut b = sample();
    set_u64(&mut b, 0x20 + 24 + 8, 0x1000);
    reseal(&mut b);
    assert_eq!(
        Bundle::parse(&b).unwrap_err().to_string(),
        "guest bundle kernel entry overlaps the initrd entry by 0x64 bytes"
    );
    let mut m = sample();
    set_u64(&mut m, 0x20 + 24 + 8, 0x3008);
    reseal(&mut m);
    assert_eq!(
        Bundle::parse(&m),
        Err(BundleError::Misaligned {
            kind: EntryKind::Initrd,
            offset: 0x3008
        })
    );
    let mut o = sample();
    set_u64(&mut o, 0x20 + 24 + 16, 0x10_0000);
    reseal(&mut o);
    assert!(matches!(
        Bundle::parse(&o),
        Err(BundleError::OutOfBounds {
            kind: EntryKind::Initrd,
            ..
        })
    ));
    let mut d = sample();
    d[0x20 + 24] = 1;
    reseal(&mut d);
    assert_eq!(
        Bundle::parse(&d),
        Err(BundleError::Duplicate {
            kind: EntryKind::Kernel
        })
    );
    let mut n = sample();
    n[0x20] = 2;
    n[0x20 + 24] = 3;
    reseal(&mut n);
    assert_eq!(Bundle::parse(&n), Err(BundleError::NoKernel));
    let mut u = sample();
    u[0x20 + 48] = 9;
    reseal(&mut u);
    assert_eq!(
        Bundle::parse(&u),
        Err(BundleError::UnknownKind { index: 2, kind: 9 })
    );
    let mut h = sample();
    set_u64(&mut h, 0x28, 0);
    reseal(&mut h);
    assert!(matches!(
        Bundle::parse(&h),
        Err(BundleError::OutOfBounds {
            kind: EntryKind::Kernel,
            ..
        })
    ));
    let mut s = sample();
    s[0x4000] = 0;
    reseal(&mut s);
    assert_eq!(Bundle::parse(&s), Err(BundleError::BadCmdline));
}

proptest! {
    #[test]
    fn round_trip(
        kernel in proptest::collection::vec(any::<u8>(), 0..9000),
        initrd in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..9000)),
        dt in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        cmdline in "[ -~]{0,200}",
    ) {
        let b = Bundle {
            kernel: &kernel,
            initrd: initrd.as_deref(),
            dt_props: dt.as_deref(),
            cmdline: Some(cmdline.as_str()),
        }.to_bytes();
        let p = Bundle::parse(&b).unwrap();
        prop_assert_eq!(p.kernel, &kernel[..]);
        prop_assert_eq!(p.initrd, initrd.as_deref());
        prop_assert_eq!(p.dt_props, dt.as_deref());
        prop_assert_eq!(p.cmdline, Some(cmdline.as_str()).filter(|c| !c.is_empty()));
        let plain = build(&kernel, initrd.as_deref(), &cmdline);
        prop_assert_eq!(Bundle::parse(&plain).unwrap().kernel, &kernel[..]);
    }

    #[test]
    fn any_single_byte_flip_is_caught(pos in 0usize..0x4000, bit in 0u8..8) {
        let mut b = sample();
        let pos = pos % b.len();
        b[pos] ^= 1 << bit;
        prop_assert!(Bundle::parse(&b).is_err());
    }
}
