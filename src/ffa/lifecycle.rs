//! The host's lifecycle at warden (README "Host lifecycle").
//!
//! At boot the host's FF-A version is open: a loader may negotiate one version and the
//! kernel it starts another, until the first FF-A call other than FFA_VERSION fixes it
//! (`version.rs`, DEN0077A v1.2 §13.2.1). A host that later lets go of everything it holds
//! through warden (its RX/TX buffers, every memory handle, a half-sent transaction, its
//! notification bitmap at the SPMC) is in the state it booted in, and the same rule applies
//! again: the version reopens, so that the next kernel (kexec, or an FF-A driver loaded
//! again as a module) can negotiate its own. The version it then asks for is served from
//! its next call on; nothing warden keeps depends on the version.

/// What the host holds through warden.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Its RX/TX buffers are mapped (FFA_RXTX_MAP).
    pub buffers: bool,
    /// Memory handles it created and has not reclaimed.
    pub handles: usize,
    /// A memory transaction it is still sending in fragments.
    pub sending: bool,
    /// Its notification bitmap exists at the SPMC.
    pub notification_bitmap: bool,
}

impl Holdings {
    pub fn nothing(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_means_every_kind_of_holding_is_gone() {
        assert!(Holdings::default().nothing());
        for h in [
            Holdings {
                buffers: true,
                ..Holdings::default()
            },
            Holdings {
                handles: 1,
                ..Holdings::default()
            },
            Holdings {
                sending: true,
                ..Holdings::default()
            },
            Holdings {
                notification_bitmap: true,
                ..Holdings::default()
            },
        ] {
            assert!(!h.nothing(), "{h:?}");
        }
    }
}
