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

use spin::Mutex;

use super::abi::{FfaFunction, Regs, num};

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

/// The calls by which the host lets go of something: after one of them succeeds, warden
/// looks at what the host still holds.
pub fn is_release(f: FfaFunction) -> bool {
    !f.is_64
        && matches!(
            f.num,
            num::RXTX_UNMAP | num::MEM_RECLAIM | num::NOTIFICATION_BITMAP_DESTROY
        )
}

/// Whether the host's notification bitmap exists at the SPMC, as warden saw the SPMC accept
/// FFA_NOTIFICATION_BITMAP_CREATE and _DESTROY (§13.18, §13.19). The lock is held across
/// the SPMC call, so that a create on one CPU and a destroy on another are recorded in the
/// order the SPMC saw them.
#[derive(Default)]
pub struct BitmapRecord(Mutex<bool>);

impl BitmapRecord {
    /// Forwards a CREATE (`create`) or DESTROY with `forward`, and records its success
    /// (FFA_SUCCESS in x0 of what the SPMC answered).
    pub fn create_or_destroy<E>(
        &self,
        create: bool,
        forward: impl FnOnce() -> Result<Regs, E>,
    ) -> Result<Regs, E> {
        let mut exists = self.0.lock();
        let r = forward()?;
        if super::abi::expect_success(&r).is_ok() {
            *exists = create;
        }
        Ok(r)
    }

    pub fn exists(&self) -> bool {
        *self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::super::abi::{self, FfaError};
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

    #[test]
    fn releases_are_the_three_letting_go_calls() {
        let f = |fid| FfaFunction::decode(fid).unwrap();
        for n in [
            num::RXTX_UNMAP,
            num::MEM_RECLAIM,
            num::NOTIFICATION_BITMAP_DESTROY,
        ] {
            assert!(is_release(f(abi::fid32(n))));
            assert!(!is_release(f(abi::fid64(n))));
        }
        for n in [num::RXTX_MAP, num::MEM_SHARE, num::RX_RELEASE, num::VERSION] {
            assert!(!is_release(f(abi::fid32(n))));
        }
    }

    #[test]
    fn the_bitmap_record_follows_what_the_spmc_accepted() {
        let b = BitmapRecord::default();
        let ok = || Ok::<_, FfaError>(abi::success_regs(&[]));
        let refused = || Ok::<_, FfaError>(abi::error_regs(FfaError::Denied));
        b.create_or_destroy(true, refused).unwrap();
        assert!(!b.exists());
        b.create_or_destroy(true, ok).unwrap();
        assert!(b.exists());
        b.create_or_destroy(false, refused).unwrap();
        assert!(b.exists(), "a refused destroy leaves it");
        assert_eq!(
            b.create_or_destroy(false, || Err(FfaError::InvalidParameters)),
            Err(FfaError::InvalidParameters)
        );
        assert!(b.exists(), "a destroy warden refused leaves it");
        b.create_or_destroy(false, ok).unwrap();
        assert!(!b.exists());
    }
}
