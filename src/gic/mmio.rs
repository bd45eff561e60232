//! Typed GIC register frames. Each frame's layout is a tock-registers `register_structs!` block in
//! its driver; [`Frame`] is the base address of one, identity mapped, and the one place that turns
//! that address into a reference to the block.

use core::marker::PhantomData;
use core::ops::Deref;

use tock_registers::registers::ReadWrite;

/// An identity-mapped GIC register frame laid out as `T` (a `register_structs!` block).
pub(crate) struct Frame<T> {
    base: usize,
    /// `fn() -> T`: a frame is an address, Send and Sync whatever `T` is.
    layout: PhantomData<fn() -> T>,
}

impl<T> Clone for Frame<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Frame<T> {}

impl<T: 'static> Frame<T> {
    /// # Safety
    /// `base` must be a GIC register frame laid out as `T`, identity mapped as Device memory at
    /// EL2 for as long as el2visor runs, and every register of `T` must exist in that frame.
    pub unsafe fn new(base: usize) -> Self {
        Self { base, layout: PhantomData }
    }

    /// The frame's registers.
    pub fn regs(&self) -> &'static T {
        // SAFETY: `Frame::new`'s caller guaranteed that `base` is a frame laid out as `T`, mapped
        // for the rest of el2visor's life. `T` is made of tock-registers cells (`UnsafeCell`s
        // accessed with volatile reads and writes of their own width) and reserved gaps nothing
        // writes, so a shared reference may coexist with the GIC and other CPUs changing them.
        unsafe { &*(self.base as *const T) }
    }
}

impl<T: 'static> Deref for Frame<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.regs()
    }
}

/// GICD_IPRIORITYR<n> (or a redistributor's GICR_IPRIORITYR<n>): `N` 32-bit registers of four
/// byte-accessible priority fields each, one per INTID. GICv3 resets a whole bank a word at a time
/// and sets one INTID's priority with a byte write, so both widths are offered.
#[repr(transparent)]
pub(crate) struct Priorities<const N: usize>([ReadWrite<u32>; N]);

impl<const N: usize> Priorities<N> {
    /// IPRIORITYR<n>: the priorities of INTIDs 4n..4n+4.
    pub fn word(&self, n: usize) -> &ReadWrite<u32> {
        &self.0[n]
    }

    /// The priority byte of `intid`.
    pub fn byte(&self, intid: usize) -> &ReadWrite<u8> {
        // SAFETY: `ReadWrite<T>` is `repr(transparent)` over `UnsafeCell<T>`, so the `N` words
        // are `4 * N` interior-mutable bytes, and a byte cell needs no alignment: the slice covers
        // exactly the memory `self` does, for as long as `self` is borrowed.
        let bytes =
            unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast::<ReadWrite<u8>>(), 4 * N) };
        &bytes[intid]
    }
}
