//! Queue index arithmetic (IHI 0070, 3.5): a queue of 2^log2 entries has PROD and CONS values
//! whose low log2 bits index an entry and whose next bit is the wrap flag, toggled each time the
//! index passes the end. Equal indices with equal wrap flags: empty; with different ones: full.

#![forbid(unsafe_code)]

/// EVENTQ_PROD.OVFLG and EVENTQ_CONS.OVACKFLG (bit 31). The SMMU toggles OVFLG when it drops an
/// event because the queue is full; software acknowledges by copying it into OVACKFLG when it
/// next writes CONS (7.4). They differ only between an overflow and its acknowledgement.
pub const OVFLG: u32 = 1 << 31;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub log2: u8,
}

impl Ring {
    pub const fn new(log2: u8) -> Self {
        Self { log2 }
    }

    pub const fn entries(&self) -> u32 {
        1 << self.log2
    }

    /// The index and wrap bits of a PROD or CONS register value (the rest is ERR / OVFLG).
    pub const fn pos(&self, reg: u32) -> u32 {
        reg & ((2 << self.log2) - 1)
    }

    /// The entry a position points at.
    pub const fn index(&self, pos: u32) -> u32 {
        pos & (self.entries() - 1)
    }

    pub const fn next(&self, pos: u32) -> u32 {
        (pos + 1) & ((2 << self.log2) - 1)
    }

    /// Whether the event queue overflowed since software last acknowledged (PROD.OVFLG and
    /// CONS.OVACKFLG differ).
    pub const fn overflowed(prod: u32, cons: u32) -> bool {
        (prod ^ cons) & OVFLG != 0
    }

    /// EVENTQ_CONS `cons` with OVACKFLG = PROD.OVFLG of `prod`: any overflow `prod` shows is
    /// acknowledged, and none is acknowledged twice (OVACKFLG never drops back to 0 on its own).
    pub const fn acknowledged(&self, cons: u32, prod: u32) -> u32 {
        self.pos(cons) | (prod & OVFLG)
    }

    /// EVENTQ_CONS after consuming the record at `cons`: the next position (the wrap bit toggling
    /// past the end), OVACKFLG kept as it is.
    pub const fn next_cons(&self, cons: u32) -> u32 {
        self.next(self.pos(cons)) | (cons & OVFLG)
    }

    pub const fn empty(&self, prod: u32, cons: u32) -> bool {
        self.pos(prod) == self.pos(cons)
    }

    /// How many entries lie between CONS and PROD (0 to `entries()`).
    pub const fn len(&self, prod: u32, cons: u32) -> u32 {
        let n = 2 << self.log2;
        (self.pos(prod) + n - self.pos(cons)) % n
    }

    pub const fn full(&self, prod: u32, cons: u32) -> bool {
        let (p, c) = (self.pos(prod), self.pos(cons));
        self.index(p) == self.index(c) && p != c
    }

    /// Whether the consumer has moved past `pos` (an entry written when CONS was `start`),
    /// allowing for the wrap.
    pub const fn consumed(&self, pos: u32, start: u32, cons: u32) -> bool {
        let n = 2 << self.log2;
        let done = (self.pos(cons) + n - self.pos(start)) % n;
        let at = (self.pos(pos) + n - self.pos(start)) % n;
        done > at
    }

    /// The queue base register value: address (aligned to the queue size, at least 32 bytes),
    /// LOG2SIZE and the read/write-allocate hint.
    pub const fn base(&self, pa: u64) -> u64 {
        (pa & super::regs::Q_BASE_ADDR_MASK) | self.log2 as u64 | super::regs::Q_BASE_ALLOC_HINT
    }
}
