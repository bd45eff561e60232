//! A VM's virtual ITS as a table model: which devices it mapped with how many events, which
//! event goes to which virtual LPI in which collection, which collection is on which vCPU. Each
//! guest command is validated against the VM's [`ItsPolicy`] (DeviceIDs it owns, its vCPUs, the
//! LPIs its redistributors implement) and, when it is good, changes the model and returns the
//! [`Effect`]s the runtime carries out on the physical ITS and in the VM's LPI delivery. A bad
//! command changes nothing and returns a [`CmdError`].
//!
//! Every mapped event owns one physical LPI from the host's [`LpiAlloc`]: the physical ITS raises
//! it on the pCPU of the vCPU the event's collection is on, and the runtime turns it back into
//! the event's virtual LPI.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::cmd::{op, CmdError, Command};
use super::lpi::FIRST_LPI;

/// What a VM may name in its ITS commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItsPolicy {
    /// DeviceID ranges the VM owns, each `[start, end)` (a PCI host bridge's requester IDs).
    pub devices: Vec<(u32, u32)>,
    /// Its vCPUs (collections map onto processor numbers `0..vcpus`).
    pub vcpus: usize,
    /// EventID bits the virtual ITS advertises (GITS_TYPER.IDbits + 1).
    pub event_bits: u8,
    /// One past the largest virtual LPI INTID (from the vGIC's GICD_TYPER.IDbits).
    pub lpi_end: u32,
    /// Number of collection IDs (ICIDs `0..collections`).
    pub collections: u16,
    /// At most this many devices mapped at once (each costs host memory for its ITT).
    pub max_devices: usize,
}

impl ItsPolicy {
    /// Whether the VM owns DeviceID `dev`.
    pub fn owns(&self, dev: u32) -> bool {
        self.devices.iter().any(|&(s, e)| dev >= s && dev < e)
    }
}

/// Where physical LPIs come from (the host's pool, shared by all VMs).
pub trait LpiAlloc {
    /// A free physical LPI, or `None` when there are none left.
    fn alloc(&mut self) -> Option<u32>;
    /// Give `plpi` back.
    fn free(&mut self, plpi: u32);
}

/// One mapped event (an interrupt translation table entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ite {
    /// The virtual LPI the guest asked for.
    pub vlpi: u32,
    /// Its collection.
    pub icid: u16,
    /// The physical LPI el2visor mapped it to.
    pub plpi: u32,
}

#[derive(Clone, Debug, Default)]
struct Device {
    /// EventID bits.
    event_bits: u8,
    events: BTreeMap<u32, Ite>,
}

/// What the runtime must do after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Physical MAPD of `dev` with an ITT of `event_bits` EventID bits (a fresh one: a mapping
    /// the device had is unmapped by an earlier effect).
    MapDevice { dev: u32, event_bits: u8 },
    /// Physical MAPD V=0 of `dev`; its ITT can go (its events were unmapped by earlier effects).
    UnmapDevice { dev: u32 },
    /// Physical MAPTI of the event to `plpi` on `vcpu`'s pCPU; route `plpi` to `vlpi` on `vcpu`.
    MapEvent { dev: u32, event: u32, plpi: u32, vcpu: usize, vlpi: u32 },
    /// Physical DISCARD of the event; `plpi` routes nowhere and is freed; `vlpi` is no longer
    /// pending.
    UnmapEvent { dev: u32, event: u32, plpi: u32, vlpi: u32 },
    /// Physical MOVI of the event to `vcpu`'s pCPU; `plpi` now routes to `vcpu`.
    MoveEvent { dev: u32, event: u32, plpi: u32, vcpu: usize },
    /// `vlpi` becomes pending on `vcpu` (INT).
    SetPending { vcpu: usize, vlpi: u32 },
    /// `vlpi` is no longer pending (CLEAR); also physical CLEAR of the event.
    ClearPending { dev: u32, event: u32, vlpi: u32 },
    /// Reread `vlpi`'s configuration and deliver it to `vcpu` if it is pending and now enabled.
    Reload { vcpu: usize, vlpi: u32 },
    /// The same for every LPI of a collection on `vcpu`.
    ReloadAll { vcpu: usize, vlpis: Vec<u32> },
}

/// The model of one VM's virtual ITS.
#[derive(Clone, Debug)]
pub struct ItsModel {
    policy: ItsPolicy,
    devices: BTreeMap<u32, Device>,
    /// Per ICID, the vCPU the collection is mapped to.
    collections: Vec<Option<usize>>,
}

impl ItsModel {
    pub fn new(policy: ItsPolicy) -> Self {
        let collections = alloc::vec![None; policy.collections as usize];
        Self { policy, devices: BTreeMap::new(), collections }
    }

    pub fn policy(&self) -> &ItsPolicy {
        &self.policy
    }

    /// The vCPU collection `icid` is mapped to.
    pub fn collection(&self, icid: u16) -> Option<usize> {
        self.collections.get(icid as usize).copied().flatten()
    }

    /// The mapping of an event, if any.
    pub fn event(&self, dev: u32, event: u32) -> Option<Ite> {
        self.devices.get(&dev)?.events.get(&event).copied()
    }

    /// Number of mapped devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Every mapped event, as (DeviceID, EventID, entry).
    pub fn events(&self) -> impl Iterator<Item = (u32, u32, Ite)> + '_ {
        self.devices.iter().flat_map(|(&d, dev)| dev.events.iter().map(move |(&e, &i)| (d, e, i)))
    }

    /// Unmap everything (a VM reset): the effects that undo every mapping on the physical ITS.
    pub fn reset(&mut self, lpis: &mut dyn LpiAlloc) -> Vec<Effect> {
        let mut out = Vec::new();
        let devs: Vec<u32> = self.devices.keys().copied().collect();
        for dev in devs {
            self.unmap_device(dev, lpis, &mut out);
        }
        self.collections.iter_mut().for_each(|c| *c = None);
        out
    }

    /// Take over `saved`'s tables (a snapshot of the same VM's virtual ITS): this model's
    /// mappings are undone ([`Self::reset`]), then `saved`'s collections, devices and events
    /// become this model's, each event with a new physical LPI from `lpis` (the ones it had may
    /// have gone to other events or VMs since), routed to the vCPU `vcpu_of` gives for its saved
    /// entry. Returns the effects on the physical ITS (the unmappings, then each device followed
    /// by its events) and how many events got no physical LPI because the pool ran dry: those
    /// stay unmapped, as after a DISCARD.
    pub fn restore_from(&mut self, saved: &ItsModel, lpis: &mut dyn LpiAlloc, vcpu_of: &dyn Fn(&Ite) -> usize) -> (Vec<Effect>, usize) {
        let mut out = self.reset(lpis);
        self.collections.clone_from(&saved.collections);
        let mut dropped = 0;
        for (&dev, d) in &saved.devices {
            out.push(Effect::MapDevice { dev, event_bits: d.event_bits });
            let mut events = BTreeMap::new();
            for (&event, ite) in &d.events {
                let Some(plpi) = lpis.alloc() else {
                    dropped += 1;
                    continue;
                };
                events.insert(event, Ite { plpi, ..*ite });
                out.push(Effect::MapEvent { dev, event, plpi, vcpu: vcpu_of(ite), vlpi: ite.vlpi });
            }
            self.devices.insert(dev, Device { event_bits: d.event_bits, events });
        }
        (out, dropped)
    }

    /// Validate and carry out one command.
    pub fn execute(&mut self, cmd: Command, lpis: &mut dyn LpiAlloc) -> Result<Vec<Effect>, CmdError> {
        match cmd {
            Command::Mapd { dev, size, valid, .. } => self.mapd(dev, size, valid, lpis),
            Command::Mapc { icid, rdbase, valid } => self.mapc(icid, rdbase, valid),
            Command::Mapti { dev, event, intid, icid } => self.mapti(op::MAPTI, dev, event, intid, icid, lpis),
            Command::Mapi { dev, event, icid } => self.mapti(op::MAPI, dev, event, event, icid, lpis),
            Command::Movi { dev, event, icid } => {
                let ite = self.ite(op::MOVI, dev, event)?;
                let vcpu = self.mapped_collection(op::MOVI, icid)?;
                if let Some(i) = self.devices.get_mut(&dev).and_then(|d| d.events.get_mut(&event)) {
                    i.icid = icid;
                }
                Ok(alloc::vec![Effect::MoveEvent { dev, event, plpi: ite.plpi, vcpu }])
            }
            Command::Int { dev, event } => {
                let ite = self.ite(op::INT, dev, event)?;
                let vcpu = self.mapped_collection(op::INT, ite.icid)?;
                Ok(alloc::vec![Effect::SetPending { vcpu, vlpi: ite.vlpi }])
            }
            Command::Clear { dev, event } => {
                let ite = self.ite(op::CLEAR, dev, event)?;
                Ok(alloc::vec![Effect::ClearPending { dev, event, vlpi: ite.vlpi }])
            }
            Command::Discard { dev, event } => {
                let ite = self.ite(op::DISCARD, dev, event)?;
                if let Some(d) = self.devices.get_mut(&dev) {
                    d.events.remove(&event);
                }
                lpis.free(ite.plpi);
                Ok(alloc::vec![Effect::UnmapEvent { dev, event, plpi: ite.plpi, vlpi: ite.vlpi }])
            }
            Command::Inv { dev, event } => {
                let ite = self.ite(op::INV, dev, event)?;
                let vcpu = self.mapped_collection(op::INV, ite.icid)?;
                Ok(alloc::vec![Effect::Reload { vcpu, vlpi: ite.vlpi }])
            }
            Command::Invall { icid } => {
                let vcpu = self.mapped_collection(op::INVALL, icid)?;
                let vlpis = self.events().filter(|(_, _, i)| i.icid == icid).map(|(_, _, i)| i.vlpi).collect();
                Ok(alloc::vec![Effect::ReloadAll { vcpu, vlpis }])
            }
            Command::Sync { rdbase } => {
                self.processor(op::SYNC, rdbase)?;
                Ok(Vec::new())
            }
            Command::Movall { from, to } => {
                // Pending state is kept per VM, not per redistributor: nothing moves.
                self.processor(op::MOVALL, from)?;
                self.processor(op::MOVALL, to)?;
                Ok(Vec::new())
            }
        }
    }

    fn processor(&self, opcode: u8, rdbase: u64) -> Result<usize, CmdError> {
        if rdbase < self.policy.vcpus as u64 {
            Ok(rdbase as usize)
        } else {
            Err(CmdError::ProcessorOutOfRange { opcode, rdbase })
        }
    }

    fn icid_in_range(&self, opcode: u8, icid: u16) -> Result<(), CmdError> {
        if icid < self.policy.collections {
            Ok(())
        } else {
            Err(CmdError::CollectionOutOfRange { opcode, icid })
        }
    }

    fn mapped_collection(&self, opcode: u8, icid: u16) -> Result<usize, CmdError> {
        self.icid_in_range(opcode, icid)?;
        self.collection(icid).ok_or(CmdError::UnmappedCollection { opcode, icid })
    }

    fn device(&self, opcode: u8, dev: u32) -> Result<&Device, CmdError> {
        if !self.policy.owns(dev) {
            return Err(CmdError::DeviceOutOfRange { opcode, dev });
        }
        self.devices.get(&dev).ok_or(CmdError::UnmappedDevice { opcode, dev })
    }

    fn ite(&self, opcode: u8, dev: u32, event: u32) -> Result<Ite, CmdError> {
        let d = self.device(opcode, dev)?;
        if event_out_of_range(event, d.event_bits) {
            return Err(CmdError::EventOutOfRange { opcode, dev, event });
        }
        d.events.get(&event).copied().ok_or(CmdError::UnmappedInterrupt { opcode, dev, event })
    }

    /// Unmap every event of `dev` (freeing their physical LPIs) and the device itself.
    fn unmap_device(&mut self, dev: u32, lpis: &mut dyn LpiAlloc, out: &mut Vec<Effect>) {
        if let Some(d) = self.devices.remove(&dev) {
            for (event, ite) in d.events {
                lpis.free(ite.plpi);
                out.push(Effect::UnmapEvent { dev, event, plpi: ite.plpi, vlpi: ite.vlpi });
            }
            out.push(Effect::UnmapDevice { dev });
        }
    }

    fn mapd(&mut self, dev: u32, size: u8, valid: bool, lpis: &mut dyn LpiAlloc) -> Result<Vec<Effect>, CmdError> {
        if !self.policy.owns(dev) {
            return Err(CmdError::DeviceOutOfRange { opcode: op::MAPD, dev });
        }
        let event_bits = size + 1;
        if valid && event_bits > self.policy.event_bits {
            return Err(CmdError::IttSizeOutOfRange { dev, size });
        }
        if valid && !self.devices.contains_key(&dev) && self.devices.len() >= self.policy.max_devices {
            return Err(CmdError::NoResources { opcode: op::MAPD });
        }
        let mut out = Vec::new();
        self.unmap_device(dev, lpis, &mut out);
        if valid {
            self.devices.insert(dev, Device { event_bits, events: BTreeMap::new() });
            out.push(Effect::MapDevice { dev, event_bits });
        }
        Ok(out)
    }

    fn mapc(&mut self, icid: u16, rdbase: u64, valid: bool) -> Result<Vec<Effect>, CmdError> {
        self.icid_in_range(op::MAPC, icid)?;
        if !valid {
            self.collections[icid as usize] = None;
            return Ok(Vec::new());
        }
        let vcpu = self.processor(op::MAPC, rdbase)?;
        let old = self.collections[icid as usize].replace(vcpu);
        if old == Some(vcpu) {
            return Ok(Vec::new());
        }
        // A collection moved, or was unmapped and is mapped again (its events kept their last
        // vCPU meanwhile, which may be another): its events follow it. A move to where an
        // event already is costs a physical MOVI and changes nothing.
        Ok(self
            .events()
            .filter(|(_, _, i)| i.icid == icid)
            .map(|(dev, event, i)| Effect::MoveEvent { dev, event, plpi: i.plpi, vcpu })
            .collect())
    }

    fn mapti(
        &mut self,
        opcode: u8,
        dev: u32,
        event: u32,
        intid: u32,
        icid: u16,
        lpis: &mut dyn LpiAlloc,
    ) -> Result<Vec<Effect>, CmdError> {
        let d = self.device(opcode, dev)?;
        if event_out_of_range(event, d.event_bits) {
            return Err(CmdError::EventOutOfRange { opcode, dev, event });
        }
        self.icid_in_range(opcode, icid)?;
        if !(FIRST_LPI..self.policy.lpi_end).contains(&intid) {
            return Err(CmdError::IntidOutOfRange { opcode, intid });
        }
        let vcpu = self.mapped_collection(opcode, icid)?;
        let Some(plpi) = lpis.alloc() else {
            return Err(CmdError::NoResources { opcode });
        };
        let mut out = Vec::new();
        // Mapping a mapped event again replaces its mapping (the architecture leaves it
        // UNPREDICTABLE; the old physical LPI must not stay routed).
        let old = self.devices.get_mut(&dev).and_then(|d| d.events.remove(&event));
        if let Some(old) = old {
            lpis.free(old.plpi);
            out.push(Effect::UnmapEvent { dev, event, plpi: old.plpi, vlpi: old.vlpi });
        }
        if let Some(d) = self.devices.get_mut(&dev) {
            d.events.insert(event, Ite { vlpi: intid, icid, plpi });
        }
        out.push(Effect::MapEvent { dev, event, plpi, vcpu, vlpi: intid });
        Ok(out)
    }
}

fn event_out_of_range(event: u32, event_bits: u8) -> bool {
    event_bits < 32 && event >> event_bits != 0
}
