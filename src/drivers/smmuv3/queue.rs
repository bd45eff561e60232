//! Queue index arithmetic (IHI 0070, 3.5): a queue of 2^log2 entries has PROD and CONS values
//! whose low log2 bits index an entry and whose next bit is the wrap flag, toggled each time the
//! index passes the end. Equal indices with equal wrap flags: empty; with different ones: full.

#![forbid(unsafe_code)]

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

    pub const fn empty(&self, prod: u32, cons: u32) -> bool {
        self.pos(prod) == self.pos(cons)
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
