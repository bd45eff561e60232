use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn build(list: &[&str]) -> Result<BuildArgs, UsageError> {
    let mut all = vec!["build"];
    all.extend_from_slice(list);
    match parse(args(&all))? {
        Command::Build(b) => Ok(b),
        other => panic!("expected Build, got {other:?}"),
    }
}

fn err(list: &[&str]) -> String {
    parse(args(list)).expect_err("should be refused").0
}

#[test]
fn build_with_everything() {
    let b = build(&[
        "--kernel", "Image", "--initrd", "i.cpio.gz", "--dt-props", "p.dtb", "--cmdline",
        "console=ttyAMA0 quiet", "-o", "out.bundle",
    ])
    .unwrap();
    assert_eq!(
        b,
        BuildArgs {
            kernel: "Image".into(),
            initrd: Some("i.cpio.gz".into()),
            dt_props: Some("p.dtb".into()),
            cmdline: "console=ttyAMA0 quiet".into(),
            output: "out.bundle".into(),
        }
    );
}

#[test]
fn build_minimal_and_inline_values() {
    let b = build(&["--kernel=Image", "--output=o", "--cmdline=a=b c=d"]).unwrap();
    assert_eq!(b.kernel, PathBuf::from("Image"));
    assert_eq!(b.output, PathBuf::from("o"));
    assert_eq!(b.initrd, None);
    assert_eq!(b.dt_props, None);
    // Only the first '=' splits: the value keeps its own.
    assert_eq!(b.cmdline, "a=b c=d");
}

#[test]
fn cmdline_may_be_empty_and_defaults_to_empty() {
    assert_eq!(build(&["--kernel", "K", "-o", "O", "--cmdline", ""]).unwrap().cmdline, "");
    assert_eq!(build(&["--kernel", "K", "-o", "O"]).unwrap().cmdline, "");
}

#[test]
fn option_order_does_not_matter() {
    let a = build(&["-o", "O", "--initrd", "I", "--kernel", "K"]).unwrap();
    let b = build(&["--kernel", "K", "--initrd", "I", "-o", "O"]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn build_requires_kernel_and_output() {
    assert!(err(&["build", "-o", "O"]).contains("--kernel IMAGE is required"));
    assert!(err(&["build", "--kernel", "K"]).contains("-o OUT is required"));
}

#[test]
fn build_refuses_missing_values() {
    assert!(err(&["build", "--kernel"]).contains("--kernel needs a value"));
    assert!(err(&["build", "--kernel", "K", "-o"]).contains("-o needs a value"));
}

#[test]
fn build_refuses_empty_paths() {
    assert!(err(&["build", "--kernel", "", "-o", "O"]).contains("--kernel has an empty value"));
    assert!(err(&["build", "--kernel=K", "--initrd=", "-o", "O"]).contains("--initrd has an empty value"));
}

#[test]
fn build_refuses_repeats_unknowns_and_positionals() {
    assert!(err(&["build", "--kernel", "A", "--kernel", "B", "-o", "O"]).contains("--kernel given twice"));
    assert!(err(&["build", "-o", "A", "--output", "B", "--kernel", "K"]).contains("given twice"));
    assert!(err(&["build", "--kernel", "K", "-o", "O", "--initramfs", "I"]).contains("unknown option \"--initramfs\""));
    assert!(err(&["build", "Image"]).contains("unexpected argument \"Image\""));
}

#[test]
fn check_takes_exactly_one_file() {
    assert_eq!(parse(args(&["check", "b"])).unwrap(), Command::Check { file: "b".into() });
    assert!(err(&["check"]).contains("which FILE"));
    assert!(err(&["check", "a", "b"]).contains("one FILE only"));
    assert!(err(&["check", "--verbose"]).contains("unknown option"));
}

#[test]
fn commands_and_help() {
    assert!(err(&[]).contains("no command"));
    assert!(err(&["pack"]).contains("unknown command \"pack\""));
    for h in ["-h", "--help", "help"] {
        assert_eq!(parse(args(&[h])).unwrap(), Command::Help);
    }
    assert!(err(&["build", "--help"]).contains("el2visor-bundle --help"));
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_pass_but_a_non_utf8_cmdline_does_not() {
    use std::os::unix::ffi::OsStringExt;
    let odd = OsString::from_vec(vec![b'k', 0xff]);
    let list = vec!["build".into(), "--kernel".into(), odd.clone(), "-o".into(), "O".into()];
    match parse(list).unwrap() {
        Command::Build(b) => assert_eq!(b.kernel, PathBuf::from(odd.clone())),
        other => panic!("{other:?}"),
    }
    let list = vec!["build".into(), "--kernel".into(), "K".into(), "-o".into(), "O".into(), "--cmdline".into(), odd];
    assert!(parse(list).unwrap_err().0.contains("not valid UTF-8"));
}

#[test]
fn build_vms_specs() {
    let list = args(&["build-vms", "--vm", "K1:I1:2:256M:console=ttyAMA0 a=b:c", "--vm=web=K2::1:1G", "-o", "O"]);
    let Command::BuildVms(b) = parse(list).unwrap() else { panic!() };
    assert_eq!(b.output, PathBuf::from("O"));
    assert_eq!(
        b.vms[0],
        VmSpec { name: "vm1".into(), kernel: "K1".into(), initrd: Some("I1".into()), cpus: 2, memory: 256 << 20, cmdline: "console=ttyAMA0 a=b:c".into() }
    );
    assert_eq!(
        b.vms[1],
        VmSpec { name: "web".into(), kernel: "K2".into(), initrd: None, cpus: 1, memory: 1 << 30, cmdline: String::new() }
    );
    // A path with '=' after a '/' is a path, not a name.
    assert_eq!(parse_vm_spec("a/b=c:I:1:2M", 2).unwrap().name, "vm3");
}

#[test]
fn build_vms_refusals() {
    assert!(err(&["build-vms", "-o", "O"]).contains("no --vm given"));
    assert!(err(&["build-vms", "--vm", "K:I:1:2M"]).contains("-o OUT is required"));
    assert!(err(&["build-vms", "--vm", "K:I:1"]).contains("too few fields"));
    assert!(err(&["build-vms", "--vm", "K:I:0:2M", "-o", "O"]).contains("CPUS is not a number of at least 1"));
    assert!(err(&["build-vms", "--vm", "K:I:x:2M", "-o", "O"]).contains("CPUS"));
    assert!(err(&["build-vms", "--vm", "K:I:1:256", "-o", "O"]).contains("MEM is not a size"));
    assert!(err(&["build-vms", "--vm", ":I:1:2M", "-o", "O"]).contains("no KERNEL"));
    assert!(err(&["build-vms", "--vm"]).contains("--vm needs a value"));
    assert!(err(&["build-vms", "--vm", "K:I:1:2M", "-o", "A", "-o", "B"]).contains("given twice"));
    assert!(err(&["build-vms", "--kernel", "K"]).contains("unexpected argument"));
}
