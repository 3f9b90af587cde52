//! warden's own RX/TX pair with the SPMC (never the host's pages: DEN0077A v1.2 §7.2).
//!
//! The buffers live inside `OwnMailbox` and are reachable only through its guard, so the
//! rule "one CPU at a time uses them" is this type's lock, not a lock elsewhere.

use core::cell::UnsafeCell;

use spin::{Mutex, MutexGuard};

/// 64 KiB each, because OP-TEE's SPMC requires a whole memory transaction descriptor, all
/// fragments together, to fit in its RX buffer (optee_os thread_spmc.c, add_mem_op:
/// `n > blen`), so the buffer size bounds the number of constituents a share can have
/// (about 4000 here, 250 with one page).
pub const OWN_BUFFER_PAGES: usize = 16;
const OWN_BUFFER_BYTES: usize = OWN_BUFFER_PAGES * 4096;

#[repr(C, align(4096))]
struct Buffers {
    /// warden writes it; the SPMC reads it during warden's calls.
    tx: [u8; OWN_BUFFER_BYTES],
    /// The SPMC writes it during warden's calls; warden reads it until FFA_RX_RELEASE.
    rx: [u8; OWN_BUFFER_BYTES],
}

pub struct OwnMailbox {
    lock: Mutex<()>,
    buffers: UnsafeCell<Buffers>,
}

// SAFETY: `buffers` is reached only through `OwnMailboxGuard`, which holds `lock`.
unsafe impl Sync for OwnMailbox {}

impl OwnMailbox {
    const fn new() -> Self {
        Self {
            lock: Mutex::new(()),
            buffers: UnsafeCell::new(Buffers {
                tx: [0; OWN_BUFFER_BYTES],
                rx: [0; OWN_BUFFER_BYTES],
            }),
        }
    }

    /// The physical addresses to register with FFA_RXTX_MAP (warden's stage-1 is flat).
    pub fn tx_address(&self) -> u64 {
        self.buffers.get() as u64 + core::mem::offset_of!(Buffers, tx) as u64
    }
    pub fn rx_address(&self) -> u64 {
        self.buffers.get() as u64 + core::mem::offset_of!(Buffers, rx) as u64
    }

    /// Waits until no other CPU uses the buffers.
    pub fn lock(&self) -> OwnMailboxGuard<'_> {
        OwnMailboxGuard {
            _held: self.lock.lock(),
            mailbox: self,
        }
    }
}

/// The right to use warden's buffers, for as long as it lives.
pub struct OwnMailboxGuard<'a> {
    _held: MutexGuard<'a, ()>,
    mailbox: &'a OwnMailbox,
}

impl OwnMailboxGuard<'_> {
    /// Copies `data` (at most the buffer's size) to the start of the TX buffer.
    pub fn write_tx(&mut self, data: &[u8]) {
        let n = data.len().min(OWN_BUFFER_BYTES);
        let tx = self.mailbox.tx_address() as *mut u8;
        // SAFETY: this guard holds the lock, so no other CPU touches the buffers, and the
        // SPMC reads TX only during warden's SMCs, never during this copy; `n` fits.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), tx, n) };
    }

    /// The RX buffer as the SPMC last wrote it.
    pub fn rx(&self) -> &[u8] {
        let rx = self.mailbox.rx_address() as *const u8;
        // SAFETY: this guard holds the lock, so no CPU writes the buffers while the slice
        // lives (it borrows the guard); the SPMC writes RX only inside warden's SMCs, which
        // take the environment mutably and so end every such borrow first.
        unsafe { core::slice::from_raw_parts(rx, OWN_BUFFER_BYTES) }
    }
}

/// The one pair warden registers with the SPMC at boot.
pub static OWN_MAILBOX: OwnMailbox = OwnMailbox::new();
