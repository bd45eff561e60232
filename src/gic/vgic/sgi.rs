//! Software-generated interrupts between vCPUs: decoding GICD_SGIR (GICv2) and a trapped
//! ICC_SGI1R_EL1 write (GICv3) into the vCPUs they target.

use alloc::vec::Vec;

use super::dist::VDist;
use super::types::{VgicAction, VgicError, VgicWarning};
use crate::gic::{mpidr_affinity, GicVersion};

/// GICD_SGIR.TargetListFilter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiFilter {
    /// The CPUs in the target list (one bit per CPU interface).
    List(u8),
    /// Every CPU but the sender.
    AllButSelf,
    /// The sender only.
    SelfOnly,
}

/// A decoded GICD_SGIR write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgir {
    pub intid: u32,
    pub filter: SgiFilter,
}

impl Sgir {
    /// Decode a GICD_SGIR value (SGIINTID 3:0, CPUTargetList 23:16, TargetListFilter 25:24);
    /// the reserved filter 3 is a warning.
    pub fn decode(value: u32) -> Result<Self, VgicWarning> {
        let filter = match (value >> 24) & 3 {
            0 => SgiFilter::List((value >> 16) as u8),
            1 => SgiFilter::AllButSelf,
            2 => SgiFilter::SelfOnly,
            _ => return Err(VgicWarning::ReservedSgiFilter { value }),
        };
        Ok(Self { intid: value & 0xf, filter })
    }

    /// The vCPUs (of `count`) this SGI goes to when `sender` writes it.
    pub fn targets(&self, sender: usize, count: usize) -> Vec<usize> {
        bits(self.target_mask(sender, count)).collect()
    }

    /// [`targets`](Self::targets) as a bit mask (bit `v` for vCPU `v`), without allocating.
    pub fn target_mask(&self, sender: usize, count: usize) -> u64 {
        (0..count.min(8))
            .filter(|&v| match self.filter {
                SgiFilter::List(mask) => mask & (1 << v) != 0,
                SgiFilter::AllButSelf => v != sender,
                SgiFilter::SelfOnly => v == sender,
            })
            .fold(0, |m, v| m | 1 << v)
    }
}

/// The set bits of `mask`, lowest first: the vCPUs of a target mask.
pub fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (mask != 0).then(|| {
            let v = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            v
        })
    })
}

/// A decoded ICC_SGI1R_EL1 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sgi1r {
    /// TargetList 15:0: Aff0 values `rs * 16 + bit`.
    pub target_list: u16,
    pub aff1: u8,
    /// INTID 27:24.
    pub intid: u32,
    pub aff2: u8,
    /// Interrupt Routing Mode 40: every PE but the sender.
    pub irm: bool,
    /// Range Selector 47:44.
    pub rs: u8,
    pub aff3: u8,
}

impl Sgi1r {
    pub fn decode(v: u64) -> Self {
        Self {
            target_list: v as u16,
            aff1: (v >> 16) as u8,
            intid: ((v >> 24) & 0xf) as u32,
            aff2: (v >> 32) as u8,
            irm: v & (1 << 40) != 0,
            rs: ((v >> 44) & 0xf) as u8,
            aff3: (v >> 48) as u8,
        }
    }

    pub fn encode(&self) -> u64 {
        self.target_list as u64
            | (self.aff1 as u64) << 16
            | ((self.intid & 0xf) as u64) << 24
            | (self.aff2 as u64) << 32
            | (self.irm as u64) << 40
            | ((self.rs & 0xf) as u64) << 44
            | (self.aff3 as u64) << 48
    }

    /// The vCPUs whose MPIDRs (`mpidrs[vcpu]`) this SGI targets when `sender` writes it.
    pub fn targets(&self, sender: usize, mpidrs: &[u64]) -> Vec<usize> {
        bits(self.target_mask(sender, mpidrs.iter().copied())).collect()
    }

    /// [`targets`](Self::targets) as a bit mask (bit `v` for vCPU `v`, the first 64), from the
    /// vCPUs' MPIDRs in order, without allocating (the path of every guest IPI).
    pub fn target_mask(&self, sender: usize, mpidrs: impl Iterator<Item = u64>) -> u64 {
        let cluster = (self.aff3 as u64) << 32 | (self.aff2 as u64) << 16 | (self.aff1 as u64) << 8;
        mpidrs
            .take(64)
            .enumerate()
            .filter(|&(v, m)| {
                if self.irm {
                    return v != sender;
                }
                let aff = mpidr_affinity(m);
                let aff0 = aff & 0xff;
                aff & !0xff == cluster
                    && aff0 >> 4 == self.rs as u64
                    && self.target_list & (1 << (aff0 & 0xf)) != 0
            })
            .fold(0, |mask, (v, _)| mask | 1 << v)
    }
}

impl VDist {
    /// A GICv2 guest's GICD_SGIR write from vCPU `vcpu`.
    pub(crate) fn sgir_write(&mut self, vcpu: usize, value: u32) -> Vec<VgicAction> {
        match Sgir::decode(value) {
            Ok(sgir) => {
                let targets = sgir.target_mask(vcpu, self.vcpus.len());
                self.send_sgi(vcpu, sgir.intid, bits(targets))
            }
            Err(w) => alloc::vec![VgicAction::Warn(w)],
        }
    }

    /// A GICv3 guest's ICC_SGI1R_EL1 write (trapped through ICH_HCR_EL2.TC or delivered as a
    /// sysreg trap) from vCPU `vcpu`.
    pub fn sgi1r_write(&mut self, vcpu: usize, value: u64) -> Result<Vec<VgicAction>, VgicError> {
        self.check_vcpu(vcpu)?;
        if self.version != GicVersion::V3 {
            return Ok(alloc::vec![VgicAction::Warn(VgicWarning::Reserved {
                frame: "ICC_SGI1R_EL1 on a GICv2 VM",
                offset: 0,
                write: true,
            })]);
        }
        let sgi = Sgi1r::decode(value);
        let targets = sgi.target_mask(vcpu, self.vcpus.iter().map(|p| p.mpidr));
        Ok(self.send_sgi(vcpu, sgi.intid, bits(targets)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn sgir_filters() {
        let list = Sgir::decode(0x0005_0003).unwrap();
        assert_eq!(list, Sgir { intid: 3, filter: SgiFilter::List(0b101) });
        assert_eq!(list.targets(1, 4), vec![0, 2]);
        assert_eq!(Sgir::decode(0x0100_0001).unwrap().targets(1, 4), vec![0, 2, 3]);
        assert_eq!(Sgir::decode(0x0200_0001).unwrap().targets(2, 4), vec![2]);
        assert_eq!(Sgir::decode(0x03ff_0001), Err(VgicWarning::ReservedSgiFilter { value: 0x03ff_0001 }));
        // Target bits for vCPUs that do not exist are dropped.
        assert_eq!(Sgir::decode(0x00f0_0001).unwrap().targets(0, 4), Vec::<usize>::new());
    }

    #[test]
    fn sgi1r_round_trip_and_targets() {
        let s = Sgi1r { target_list: 0b1010, aff1: 1, intid: 7, aff2: 2, irm: false, rs: 0, aff3: 3 };
        assert_eq!(Sgi1r::decode(s.encode()), s);
        // 0x8000_0000 is MPIDR.RES1, which routing must ignore.
        let mpidrs = [
            0x8000_0000 | 3 << 32 | 0x02_0100,
            0x8000_0000 | 3 << 32 | 0x02_0101,
            0x8000_0000 | 3 << 32 | 0x02_0102,
            0x8000_0000 | 3 << 32 | 0x02_0103,
            0x8000_0000 | 0x0101,
        ];
        assert_eq!(s.targets(0, &mpidrs), vec![1, 3]);
        let all = Sgi1r { irm: true, ..s };
        assert_eq!(all.targets(2, &mpidrs), vec![0, 1, 3, 4]);
        // Range selector 1 addresses Aff0 16..31.
        let high = Sgi1r { target_list: 1, aff1: 0, intid: 1, aff2: 0, irm: false, rs: 1, aff3: 0 };
        assert_eq!(high.targets(0, &[0, 16, 17]), vec![1]);
        // `msr icc_sgi1r_el1` for Aff0 = 2 in cluster 0 with INTID 5, as Linux builds it.
        assert_eq!(Sgi1r::decode(5 << 24 | 1 << 2).targets(0, &[0, 1, 2, 3]), vec![2]);
    }
}
