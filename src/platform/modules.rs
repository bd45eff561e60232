//! Xen multiboot module nodes (`compatible = "multiboot,kernel"`, `"multiboot,ramdisk"`,
//! `"multiboot,device-tree"`, `"multiboot,module"`), under `/chosen` or a dom0less domain.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::DtErrorKind;
use super::ranges::Level;
use super::tree::{self, bad_prop, Node};
use super::{Module, ModuleKind};

fn owned_strings(v: Option<&[u8]>) -> Vec<String> {
    tree::strings(v.unwrap_or(&[])).map(String::from).collect()
}

/// A multiboot module node (`compatible = "multiboot,…"`) under `parent`, whose `reg` is read in
/// `chain`'s cells untranslated; `None` for any other node.
pub fn module(m: Node<'_, '_>, parent: &str, chain: &[Level<'_>]) -> Result<Option<Module>, DtErrorKind> {
    let compatible = owned_strings(tree::prop(m, "compatible"));
    if !compatible.iter().any(|c| c.starts_with("multiboot,")) {
        return Ok(None);
    }
    let mpath = format!("{parent}/{}", m.name);
    let has = |c: &str| compatible.iter().any(|x| x == c);
    let kind = if has("multiboot,kernel") {
        ModuleKind::Kernel
    } else if has("multiboot,ramdisk") {
        ModuleKind::Ramdisk
    } else if has("multiboot,device-tree") {
        ModuleKind::DeviceTree
    } else {
        ModuleKind::Other
    };
    let range = tree::translated_regs(m, chain, &mpath)
        .next()
        .ok_or(bad_prop(&mpath, "reg", "missing: where is the module?"))??;
    if range.size == 0 {
        return Err(bad_prop(&mpath, "reg", "an empty module"));
    }
    let bootargs = tree::prop_str(m, "bootargs").map(String::from);
    Ok(Some(Module { path: mpath, kind, compatible, range, bootargs }))
}
