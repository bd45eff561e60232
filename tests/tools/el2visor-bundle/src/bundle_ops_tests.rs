use super::*;
use el2visor::vm::bundle::BundleError;
use el2visor::vm::image::ImageError;

/// A minimal valid arm64 Image: header (text_offset 0, image_size 64 KiB, flags 4K pages +
/// placement anywhere, magic) followed by `body` bytes.
pub fn image(body: usize) -> Vec<u8> {
    let mut v = vec![0u8; 64 + body];
    v[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b +0x40
    v[0x10..0x18].copy_from_slice(&0x10000u64.to_le_bytes());
    v[0x18..0x20].copy_from_slice(&0xau64.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(b"ARM\x64");
    for (i, b) in v[64..].iter_mut().enumerate() {
        *b = i as u8;
    }
    v
}

fn dtb(totalsize: u32, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[0..4].copy_from_slice(&[0xd0, 0x0d, 0xfe, 0xed]);
    v[4..8].copy_from_slice(&totalsize.to_be_bytes());
    v
}

fn inputs<'a>(kernel: &'a [u8]) -> Inputs<'a> {
    Inputs { kernel, cmdline: "console=ttyAMA0", ..Inputs::default() }
}

#[test]
fn build_round_trips_through_el2visors_parser() {
    let k = image(5000);
    let initrd = b"070701 pretend cpio".to_vec();
    let props = dtb(64, 64);
    let bytes = build_bytes(&Inputs {
        kernel: &k,
        initrd: Some(&initrd),
        dt_props: Some(&props),
        cmdline: "console=ttyAMA0,115200 quiet",
    })
    .unwrap();
    let b = Bundle::parse(&bytes).unwrap();
    assert_eq!(b.kernel, &k[..]);
    assert_eq!(b.initrd, Some(&initrd[..]));
    assert_eq!(b.dt_props, Some(&props[..]));
    assert_eq!(b.cmdline, Some("console=ttyAMA0,115200 quiet"));
}

#[test]
fn empty_cmdline_leaves_the_entry_out() {
    let k = image(10);
    let bytes = build_bytes(&Inputs { kernel: &k, cmdline: "", ..Inputs::default() }).unwrap();
    assert_eq!(Bundle::parse(&bytes).unwrap().cmdline, None);
    assert!(describe(&bytes).unwrap().contains("1 entries"));
}

#[test]
fn refuses_kernels_that_are_not_images_and_says_what_they_are() {
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0].repeat(10);
    let (role, e) = build_bytes(&inputs(&gz)).unwrap_err();
    assert_eq!(role, Role::Kernel);
    assert!(matches!(e, InputError::Kernel(ImageError::OtherFormat { .. })));
    assert!(e.to_string().contains("gunzip"), "{e}");

    let elf = [b"\x7fELF".as_slice(), &[0; 60]].concat();
    assert!(build_bytes(&inputs(&elf)).unwrap_err().1.to_string().contains("ELF"));

    let (_, e) = build_bytes(&inputs(b"short")).unwrap_err();
    assert_eq!(e, InputError::Kernel(ImageError::TooShort { len: 5 }));

    let mut big_endian = image(0);
    big_endian[0x18] |= 1;
    assert_eq!(build_bytes(&inputs(&big_endian)).unwrap_err().1, InputError::Kernel(ImageError::BigEndian));
}

#[test]
fn refuses_bad_initrds() {
    let k = image(100);
    let with = |i: &'static [u8]| build_bytes(&Inputs { initrd: Some(i), ..inputs(&k) }).unwrap_err();
    assert_eq!(with(b""), (Role::Initrd, InputError::EmptyInitrd));
    let nested = build_bytes(&inputs(&k)).unwrap();
    let e = build_bytes(&Inputs { initrd: Some(&nested), ..inputs(&k) }).unwrap_err();
    assert_eq!(e, (Role::Initrd, InputError::NestedBundle));
    let e = build_bytes(&Inputs { initrd: Some(&k), ..inputs(&k) }).unwrap_err();
    assert_eq!(e, (Role::Initrd, InputError::InitrdIsKernel));
}

#[test]
fn refuses_bad_dt_props() {
    let k = image(100);
    let with = |d: &[u8]| build_bytes(&Inputs { dt_props: Some(d), ..inputs(&k) }).unwrap_err().1;
    assert_eq!(with(b"/dts-v1/;"), InputError::NotDtb { magic: *b"/dts" });
    assert_eq!(with(&[0xd0, 0x0d]), InputError::NotDtb { magic: [0xd0, 0x0d, 0, 0] });
    assert_eq!(with(&dtb(200, 100)), InputError::BadDtbSize { totalsize: 200, file: 100 });
    assert_eq!(with(&dtb(8, 100)), InputError::BadDtbSize { totalsize: 8, file: 100 });
}

#[test]
fn refuses_bad_cmdlines() {
    let k = image(100);
    let e = build_bytes(&Inputs { cmdline: "a\0b", ..inputs(&k) }).unwrap_err();
    assert_eq!(e, (Role::Cmdline, InputError::CmdlineNul));
    let long = "x".repeat(MAX_CMDLINE + 1);
    let e = build_bytes(&Inputs { cmdline: &long, ..inputs(&k) }).unwrap_err();
    assert_eq!(e, (Role::Cmdline, InputError::CmdlineTooLong { len: MAX_CMDLINE + 1 }));
    let exact = "x".repeat(MAX_CMDLINE);
    assert!(build_bytes(&Inputs { cmdline: &exact, ..inputs(&k) }).is_ok());
}

#[test]
fn describe_lists_each_entry_with_its_offset() {
    let k = image(5000);
    let initrd = [0x1f, 0x8b, 1, 2, 3];
    let mut bytes = build_bytes(&Inputs { initrd: Some(&initrd), ..inputs(&k) }).unwrap();
    let text = describe(&bytes).unwrap();
    assert!(text.contains("3 entries"), "{text}");
    assert!(text.contains("kernel   offset 0x00001000        5064 bytes  arm64 Image, text_offset 0x0, image_size 0x10000, flags 0xa (4K pages, placement anywhere)"), "{text}");
    // The kernel (5064 bytes at 0x1000) ends inside the second page: the initrd starts at 0x3000.
    assert!(text.contains("initrd   offset 0x00003000           5 bytes  gzip"), "{text}");
    assert!(text.contains("cmdline  offset 0x00004000          15 bytes  \"console=ttyAMA0\""), "{text}");
    assert!(!text.contains("after the bundle"));
    bytes.extend_from_slice(&[0; 100]);
    assert!(describe(&bytes).unwrap().contains("100 bytes after the bundle"));
}

#[test]
fn describe_refuses_what_el2visor_refuses() {
    let k = image(100);
    let mut bytes = build_bytes(&inputs(&k)).unwrap();
    assert!(matches!(describe(&bytes[..100]), Err(InputError::Bundle(BundleError::Truncated { .. }))));
    assert_eq!(describe(b"hello, world, this is not a bundle at all"), Err(InputError::Bundle(BundleError::BadMagic)));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(describe(&bytes), Err(InputError::Bundle(BundleError::BadChecksum { .. }))));
}

#[test]
fn describe_refuses_a_bundle_whose_kernel_is_not_an_image() {
    // The library's serializer writes any bytes as the kernel; the tool's check must still catch it.
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0].repeat(10);
    let bytes = Bundle { kernel: &gz, ..Bundle::default() }.to_bytes();
    assert!(matches!(describe(&bytes), Err(InputError::Kernel(ImageError::OtherFormat { .. }))));
}

#[test]
fn initrd_kinds() {
    assert_eq!(initrd_kind(b"070701..."), "cpio newc");
    assert_eq!(initrd_kind(&[0x28, 0xb5, 0x2f, 0xfd, 0]), "zstd");
    assert_eq!(initrd_kind(b"\xfd7zXZ\0"), "xz");
    assert_eq!(initrd_kind(b"??"), "unrecognised format");
}

fn vm<'a>(name: &'a str, kernel: &'a [u8]) -> VmInputs<'a> {
    VmInputs { name, cpus: 2, memory: 256 << 20, kernel, initrd: None, cmdline: "console=ttyAMA0" }
}

#[test]
fn build_vms_round_trips_and_lists_each_vm() {
    let (k1, k2) = (image(5000), image(10));
    let initrd = [0x1f, 0x8b, 0, 0];
    let bytes = build_vms_bytes(&[VmInputs { initrd: Some(&initrd), ..vm("pi1", &k1) }, VmInputs { cpus: 1, ..vm("pi2", &k2) }]).unwrap();
    let b = VmsBundle::parse(&bytes).unwrap();
    assert_eq!(b.vms.len(), 2);
    assert!(b.vms.iter().all(|v| v.vpl011));
    assert_eq!(b.bytes(b.vms[1].kernel), &k2[..]);
    let text = describe(&bytes).unwrap();
    assert!(text.starts_with("el2visor guest bundle, version 2, 2 VMs, 7 entries, "), "{text}");
    assert!(text.contains("  VM pi1: 2 vCPUs, 256 MiB RAM, vpl011\n    kernel   offset 0x00002000        5064 bytes  arm64 Image"), "{text}");
    assert!(text.contains("    initrd   offset 0x00004000           4 bytes  gzip"), "{text}");
    assert!(text.contains("  VM pi2: 1 vCPUs, 256 MiB RAM, vpl011"), "{text}");
    assert!(text.contains("cmdline  offset 0x"), "{text}");
}

#[test]
fn build_vms_refuses_bad_vms() {
    let k = image(10);
    let e = |list: &[VmInputs<'_>]| build_vms_bytes(list).unwrap_err();
    assert_eq!(e(&[vm("a b", &k)]), (Some(0), Role::Name, InputError::BadVmName));
    assert_eq!(e(&[vm("a", &k), vm("a", &k)]), (Some(1), Role::Name, InputError::DuplicateVmName));
    assert_eq!(e(&[VmInputs { memory: 3 << 20, ..vm("a", &k) }]), (Some(0), Role::Memory, InputError::BadVmMemory { memory: 3 << 20 }));
    assert!(matches!(e(&[vm("a", &k), vm("b", b"gzip?")]), (Some(1), Role::Kernel, InputError::Kernel(_))));
    assert_eq!(e(&[VmInputs { initrd: Some(&k), ..vm("a", &k) }]), (Some(0), Role::Initrd, InputError::InitrdIsKernel));
    let names: Vec<String> = (0..9).map(|i| format!("v{i}")).collect();
    let many: Vec<VmInputs<'_>> = names.iter().map(|n| vm(n, &k)).collect();
    assert_eq!(e(&many), (None, Role::Output, InputError::TooManyVms { count: 9 }));
}

#[test]
fn describe_refuses_a_vm_whose_kernel_is_not_an_image() {
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0].repeat(10);
    let bytes = vms::build(&[VmParts { name: "a", cpus: 1, memory: 2 << 20, kernel: &gz, ..VmParts::default() }]);
    assert!(matches!(describe(&bytes), Err(InputError::Kernel(ImageError::OtherFormat { .. }))));
    let mut bad = vms::build(&[VmParts { name: "a", cpus: 1, memory: 2 << 20, kernel: &image(10), ..VmParts::default() }]);
    bad[0x1000 + 0x20] = 0; // 0 vCPUs, checksum now wrong too
    assert!(matches!(describe(&bad), Err(InputError::Bundle(_))));
}
