//! `/cpus` (MPIDRs, enable-method, spin-table release addresses, status) and `/psci`.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::DtErrorKind;
use super::ranges::read_cells;
use super::tree::{self, bad_prop, Node};
use super::{Conduit, Cpu, EnableMethod, Psci};
use crate::mm::addr::Pa;

/// The CPU nodes under `/cpus` (children with `device_type = "cpu"` or named `cpu@…`).
pub fn cpus(cpus: Node<'_, '_>) -> Result<Vec<Cpu>, DtErrorKind> {
    let cells = tree::cells_of(cpus, "/cpus")?;
    let inherited = tree::prop_str(cpus, "enable-method");
    let mut out = Vec::new();
    for n in cpus.children() {
        let is_cpu = tree::prop_str(n, "device_type") == Some("cpu")
            || n.name.split('@').next() == Some("cpu");
        if !is_cpu {
            continue;
        }
        let path = format!("/cpus/{}", n.name);
        let reg =
            tree::prop(n, "reg").ok_or(bad_prop(&path, "reg", "missing: the MPIDR is unknown"))?;
        if cells.addr == 0 || cells.addr > 2 || reg.len() < 4 * cells.addr as usize {
            return Err(bad_prop(&path, "reg", "expected an MPIDR of 1 or 2 cells"));
        }
        let mpidr =
            read_cells(reg, cells.addr).ok_or(bad_prop(&path, "reg", "unreadable MPIDR"))?;
        let enable = match tree::prop_str(n, "enable-method").or(inherited) {
            None => EnableMethod::None,
            Some("psci") => EnableMethod::Psci,
            Some("spin-table") => {
                let addr = tree::prop_u64(n, &path, "cpu-release-addr")?.ok_or(bad_prop(
                    &path,
                    "cpu-release-addr",
                    "missing for a spin-table CPU",
                ))?;
                EnableMethod::SpinTable {
                    release_addr: Pa(addr),
                }
            }
            Some(other) => EnableMethod::Other(String::from(other)),
        };
        out.push(Cpu {
            path,
            mpidr,
            enable,
            status: tree::status(n),
        });
    }
    if out.is_empty() {
        return Err(DtErrorKind::MissingNode {
            path: "/cpus/cpu@…",
        });
    }
    Ok(out)
}

/// The PSCI node (`arm,psci*`): conduit and highest compatible version.
pub fn psci(n: Node<'_, '_>, path: &str) -> Result<Psci, DtErrorKind> {
    let conduit = match tree::prop_str(n, "method") {
        Some("smc") => Conduit::Smc,
        Some("hvc") => Conduit::Hvc,
        Some(_) => return Err(bad_prop(path, "method", "must be \"smc\" or \"hvc\"")),
        None => {
            return Err(bad_prop(
                path,
                "method",
                "missing: the PSCI conduit is unknown",
            ))
        }
    };
    let mut version = None;
    for c in tree::strings(tree::prop(n, "compatible").unwrap_or(&[])) {
        let v = match c.strip_prefix("arm,psci") {
            Some("") => Some((0, 1)),
            Some(rest) => rest.strip_prefix('-').and_then(|v| {
                let (maj, min) = v.split_once('.')?;
                Some((maj.parse().ok()?, min.parse().ok()?))
            }),
            None => None,
        };
        version = version.max(v);
    }
    Ok(Psci {
        conduit,
        version: version.ok_or(bad_prop(path, "compatible", "no arm,psci version"))?,
        cpu_on: tree::prop_u32(n, path, "cpu_on")?,
        cpu_off: tree::prop_u32(n, path, "cpu_off")?,
    })
}

/// Whether a node is a PSCI node.
pub fn is_psci(n: Node<'_, '_>) -> bool {
    tree::prop(n, "compatible").is_some_and(|v| tree::strings(v).any(|c| c.starts_with("arm,psci")))
}
