//! Who owns which RAM, once the heap exists: what el2visor keeps, what firmware owns, what the VM
//! gets, and the frame allocator's share.
//!
//! el2visor keeps one block at the top of RAM (`super::relocate` moved its image and the device
//! tree there): below the device tree its frame pool and the pristine copies of the boot modules
//! (or the guest bundle) a SYSTEM_RESET reloads from. The modules are copied there from wherever
//! the loader put them (those in the way are moved aside first), so that the memory they were in
//! goes to the VM, whose first boot runs them there. The VM (multiboot modules or a bundle) takes
//! all the rest of RAM identity mapped, holes only where the hardware has them. If el2visor could
//! not move itself, or only below something the loader put at the very top of RAM, the VM's RAM
//! has holes, and a warning says so.
//!
//! Firmware memory stays in the VM's `/memory`, as on bare hardware, and is passed on as reserved
//! in its device tree; images are never loaded there. `/reserved-memory` regions are mapped at
//! Stage 2 (a driver may use them, as Xen gives them to dom0); `/memreserve/` ranges and
//! spin-table pages are not (a guest that wrote a spin table could release a parked CPU at EL2).
//!
//! With the embedded guest, el2visor's frame allocator manages all free RAM and the VM's RAM
//! comes from it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::{boot::ImageLayout, cache};
use crate::mm::addr::{PaRange, PAGE_SIZE, SIZE_2M};
use crate::mm::frames::global as frames;
use crate::mm::layout::{block_below, free_ranges, highest_fit};
use crate::platform::{EnableMethod, Platform, ReservedSource};

/// RAM el2visor keeps for its frames (Stage-2 tables, heap growth) when the VM takes host RAM.
pub const HYP_POOL: u64 = 64 << 20;

/// The split of RAM.
pub struct HostMemory {
    /// What el2visor keeps: its image, the device tree and, when the VM takes host RAM, its pool
    /// and the pristine module copies. Never the VM's.
    pub kept: Vec<PaRange>,
    /// Firmware memory: `/memreserve/`, `/reserved-memory` `reg`s, spin-table pages. In the VM's
    /// `/memory`, reserved in its device tree; nothing is loaded there.
    pub firmware: Vec<PaRange>,
    /// The part of `firmware` Stage 2 does not map: `/memreserve/` ranges and spin-table pages.
    pub hidden: Vec<PaRange>,
    /// Where each range `init` was asked to copy is now (itself when it could not be copied).
    pub copies: Vec<PaRange>,
    /// Where the same bytes still are in the VM's RAM, until the VM is built (the loader's place,
    /// or where they were moved aside): a first boot can run them there without another copy.
    pub in_vm_ram: Vec<Option<PaRange>>,
    /// Which of `copies` are slots not filled yet (`init`'s `defer`): their bytes are only at
    /// `in_vm_ram`, and the VM makes the copy (`vm::pristine`).
    pub unfilled: Vec<bool>,
    /// RAM set aside, contiguous and 2 MiB aligned, for dom0less domains (`extra` bytes), handed
    /// out in order by [`DomainRam`]; no allocator has it.
    pub domain_area: Option<PaRange>,
    /// RAM set aside for the snapshot's copy of the VM's RAM (`snapshot_mem=`), 2 MiB aligned;
    /// no allocator has it.
    pub snapshot_area: Option<PaRange>,
}

/// Hands out the dom0less domains' RAM from [`HostMemory::domain_area`], one contiguous range
/// each, in order: static partitioning needs no more than that.
pub struct DomainRam {
    next: u64,
    end: u64,
}

impl DomainRam {
    pub fn new(mem: &HostMemory) -> Self {
        let a = mem.domain_area.unwrap_or(PaRange::new(0, 0));
        DomainRam { next: a.start.raw(), end: a.end() }
    }

    /// `size` bytes (a multiple of 2 MiB), or `None` when the area is used up.
    pub fn take(&mut self, size: u64) -> Option<PaRange> {
        let end = self.next.checked_add(size).filter(|&e| e <= self.end)?;
        let r = PaRange::new(self.next, size);
        self.next = end;
        Some(r)
    }
}

/// What [`init`] copies into el2visor's block (`sources`), and which of them it only makes room
/// for (`defer`, by index; missing means copy now).
#[derive(Clone, Copy)]
pub struct ToCopy<'a> {
    pub sources: &'a [PaRange],
    pub defer: &'a [bool],
    /// The VM sees RAM as el2visor does, cacheable, whatever its own MMU says (FWB): the memory
    /// the sources leave to it needs no cache maintenance for its data accesses.
    pub fwb: bool,
}

fn page_range(r: PaRange) -> PaRange {
    let start = r.start.align_down(PAGE_SIZE).raw();
    PaRange::new(start, (r.end() - start).next_multiple_of(PAGE_SIZE))
}

fn in_ram(ram: &[PaRange], r: &PaRange) -> bool {
    free_ranges(ram, &[]).iter().any(|f| f.start.raw() <= r.start.raw() && r.end() <= f.end())
}

/// Split RAM between el2visor, firmware and the VM, and give the frame allocator its share. When
/// the VM takes host RAM (`identity`), copy `to_copy`'s sources (the boot modules, or the bundle) into
/// el2visor's block, whose pool also holds `extra` bytes for dom0less domains' RAM; else the
/// frame allocator gets all free RAM but `sources`, which stay where they are. `snapshot` bytes
/// (a multiple of 2 MiB, or 0) are set aside for the snapshot area; when they do not fit, one line
/// says so and there is none. A source whose `defer` is set gets its slot but is not copied
/// there: the VM copies it later (its `unfilled`).
pub fn init(p: &Platform, image: &ImageLayout, dtb: &[u8], identity: bool, to_copy: ToCopy<'_>, extra: u64, snapshot: u64) -> Result<HostMemory, String> {
    let ToCopy { sources, defer, fwb } = to_copy;
    let mut hidden: Vec<PaRange> = Vec::new();
    let mut firmware: Vec<PaRange> = Vec::new();
    for r in &p.reserved {
        firmware.push(r.range);
        if r.source == ReservedSource::MemReserve {
            hidden.push(r.range);
        }
    }
    for c in &p.cpus {
        if let EnableMethod::SpinTable { release_addr } = c.enable {
            let page = PaRange::new(release_addr.align_down(PAGE_SIZE).raw(), PAGE_SIZE);
            firmware.push(page);
            hidden.push(page);
        }
    }
    let image_r = PaRange::new(image.start, image.end - image.start);
    // Something the loader put at the very top of RAM keeps el2visor below it: say so, the VM's
    // RAM then has a hole.
    if let Some(r) = free_ranges(&p.memory, &[]).into_iter().find(|r| r.contains(image.start)) {
        if r.end() - image.end >= SIZE_2M {
            log::warn!(
                "el2visor is not at the top of RAM ({:#x}..{:#x} is above it): the VM's RAM has a hole",
                image.end,
                r.end()
            );
        }
    }
    let dtb_r = page_range(PaRange::new(dtb.as_ptr() as u64, dtb.len() as u64));
    let mut kept = alloc::vec![image_r, dtb_r];
    let mut in_use = firmware.clone();
    in_use.extend([image_r, dtb_r]);

    if !identity {
        let mut not_free = in_use.clone();
        not_free.extend(p.chosen.modules.iter().map(|m| m.range));
        not_free.extend(p.chosen.initrd);
        not_free.extend(sources.iter().copied());
        let domain_area = match extra {
            0 => None,
            _ => {
                let a = highest_fit(&p.memory, &not_free, extra, SIZE_2M)
                    .ok_or_else(|| format!("no {} MiB of contiguous free RAM for the dom0less domains", extra >> 20))?;
                not_free.push(a);
                kept.push(a);
                Some(a)
            }
        };
        let snapshot_area = match snapshot {
            0 => None,
            _ => match highest_fit(&p.memory, &not_free, snapshot, SIZE_2M) {
                Some(a) => {
                    not_free.push(a);
                    kept.push(a);
                    Some(a)
                }
                None => {
                    no_snapshot_room(snapshot);
                    None
                }
            },
        };
        add_frames(&free_ranges(&p.memory, &not_free));
        log_split(&kept, p);
        return Ok(HostMemory {
            kept,
            firmware,
            hidden,
            copies: sources.to_vec(),
            in_vm_ram: alloc::vec![None; sources.len()],
            unfilled: alloc::vec![false; sources.len()],
            domain_area,
            snapshot_area,
        });
    }
    // A source that is not all RAM, or lies on firmware memory, stays where it is (the VM plan
    // says what is wrong with it).
    let movable = |r: &PaRange| in_ram(&p.memory, r) && !in_use.iter().any(|u| u.overlaps(r));

    let copies: u64 = sources.iter().filter(|r| movable(r)).map(|r| r.size.next_multiple_of(PAGE_SIZE)).sum();
    // 2 MiB more for the domains' area's alignment after the copies.
    let base_size = HYP_POOL + copies + if extra > 0 { extra + SIZE_2M } else { 0 };
    // The snapshot area too, when the RAM has room for it and a VM of at least 64 MiB beside
    // (whether the VM's RAM then fits the area is the snapshot's own check, with its one line).
    let total = crate::mm::layout::total_size(&p.memory);
    let mut snapshot = if snapshot > 0 && base_size + snapshot + SIZE_2M + (64 << 20) > total {
        no_snapshot_room(snapshot);
        0
    } else {
        snapshot
    };
    // Right below the image and the device tree, if they are one block (they are once el2visor
    // has moved itself); else the highest free RAM, with a hole in the VM's RAM.
    let low = if dtb_r.end() == image_r.start.raw() { dtb_r.start.raw() } else { image_r.start.raw() };
    let mut avoid = in_use.clone();
    avoid.extend(sources.iter().copied());
    let find = |size: u64| block_below(&p.memory, &in_use, low, size, SIZE_2M).map(|a| (a, true)).or_else(|| highest_fit(&p.memory, &avoid, size, SIZE_2M).map(|a| (a, false)));
    let mut found = find(base_size + if snapshot > 0 { snapshot + SIZE_2M } else { 0 });
    if found.is_none() && snapshot > 0 {
        // Free RAM in pieces too small for the snapshot area: el2visor boots without it (one
        // line), as when the RAM is too small, rather than not at all.
        no_snapshot_room(snapshot);
        snapshot = 0;
        found = find(base_size);
    }
    let size = base_size + if snapshot > 0 { snapshot + SIZE_2M } else { 0 };
    let area = match found {
        Some((a, true)) => a,
        found => {
            let (a, _) = found.ok_or_else(|| format!("no {} MiB of free RAM for el2visor's pool and the boot-module copies", size >> 20))?;
            log::warn!(
                "el2visor's pool and module copies are not next to its image: the VM's RAM has a hole at {:#x}..{:#x}",
                a.start.raw(),
                a.end()
            );
            a
        }
    };

    // Sources in the area go aside first: into RAM nothing else uses, the highest that fits.
    let mut avoid = in_use.clone();
    avoid.push(area);
    avoid.extend(sources.iter().copied());
    let mut from: Vec<Option<PaRange>> = Vec::with_capacity(sources.len());
    for s in sources {
        if !movable(s) {
            from.push(None);
            continue;
        }
        if !s.overlaps(&area) {
            from.push(Some(*s));
            continue;
        }
        // 2 MiB aligned: a kernel can boot there (see `in_vm_ram`).
        let aside = highest_fit(&p.memory, &avoid, s.size.next_multiple_of(PAGE_SIZE), SIZE_2M)
            .ok_or_else(|| format!("no free RAM to move the boot module at {:#x} out of el2visor's way", s.start.raw()))?;
        // SAFETY: `s` is RAM the loader filled; `aside` is free RAM outside every range in use.
        unsafe { cache::copy(aside.start.raw(), s.start.raw(), s.size) };
        avoid.push(aside);
        from.push(Some(PaRange::new(aside.start.raw(), s.size)));
    }
    // Then every source into its slot at the bottom of the area; the pool takes the rest.
    let mut cursor = area.start.raw();
    let mut moved = Vec::with_capacity(sources.len());
    let mut unfilled = Vec::with_capacity(sources.len());
    for (i, (s, f)) in sources.iter().zip(&from).enumerate() {
        let Some(f) = f else {
            moved.push(*s);
            unfilled.push(false);
            continue;
        };
        let later = defer.get(i).copied().unwrap_or(false);
        unfilled.push(later);
        if !later {
            // SAFETY: `f` is outside the area (moved aside above if it was not), the slot inside it.
            unsafe { cache::copy(cursor, f.start.raw(), f.size) };
        }
        moved.push(PaRange::new(cursor, s.size));
        cursor += s.size.next_multiple_of(PAGE_SIZE);
    }
    // The memory the modules were in is the VM's now: leave none of it in the caches, so that
    // nothing el2visor wrote is evicted over what the guest writes with its caches off. With FWB
    // the guest's accesses are cacheable too, and only what el2visor wrote (a module moved aside,
    // which the guest may run in place) must reach the point of unification for its fetches;
    // a module where the loader put it is as the boot protocol left it, cleaned.
    for (s, f) in sources.iter().zip(&from) {
        if !fwb {
            for r in [Some(*s), *f].into_iter().flatten() {
                cache::clean_inval_range(r.start.raw(), r.size as usize);
            }
        } else if let Some(f) = f.filter(|f| f != s) {
            cache::sync_icache_range(f.start.raw(), f.size as usize);
        }
    }
    // The domains' RAM next, 2 MiB aligned; the pool takes the rest.
    let domain_area = (extra > 0).then(|| {
        let start = cursor.next_multiple_of(SIZE_2M);
        cursor = start + extra;
        PaRange::new(start, extra)
    });
    let snapshot_area = (snapshot > 0).then(|| {
        let start = cursor.next_multiple_of(SIZE_2M);
        cursor = start + snapshot;
        PaRange::new(start, snapshot)
    });
    if cursor > area.end() {
        return Err(format!(
            "el2visor's block of {} MiB has no room for the module copies, the dom0less domains' {} MiB and the snapshot area's {} MiB",
            area.size >> 20,
            extra >> 20,
            snapshot >> 20
        ));
    }
    kept.push(area);
    add_frames(&[PaRange::new(cursor, area.end() - cursor)]);
    log_split(&kept, p);
    Ok(HostMemory { kept, firmware, hidden, copies: moved, in_vm_ram: from, unfilled, domain_area, snapshot_area })
}

/// The one line that says `snapshot_mem=` does not fit.
fn no_snapshot_room(size: u64) {
    log::warn!("snapshot: no room for snapshot_mem={} MiB in RAM: snapshots are off", size >> 20);
}

fn add_frames(ranges: &[PaRange]) {
    for r in ranges {
        if let Err(e) = frames::add_range(*r) {
            log::warn!("frame allocator: {e}");
        }
    }
}

/// One line: where el2visor's memory is (touching ranges merged) and what its frames have.
fn log_split(kept: &[PaRange], p: &Platform) {
    let spans: Vec<String> = free_ranges(kept, &[]).iter().map(|r| format!("{:#x}..{:#x}", r.start.raw(), r.end())).collect();
    log::info!(
        "memory: el2visor keeps {} ({} MiB of {} MiB RAM); its frame allocator has {} MiB",
        spans.join(", "),
        crate::mm::layout::total_size(kept) >> 20,
        crate::mm::layout::total_size(&p.memory) >> 20,
        (frames::free_frames() as u64 * PAGE_SIZE) >> 20
    );
}
