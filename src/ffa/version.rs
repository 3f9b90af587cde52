//! FF-A versions and the host's version negotiation (DEN0077A v1.2 §13.2).
//!
//! warden implements v1.2 towards the host and translates for hosts at v1.0 and v1.1,
//! whatever version the SPMC speaks. The rule warden applies, decided from §13.2.1:
//! - FFA_VERSION returns the callee's version: warden's, v1.2, for any v1.x request.
//! - The host's negotiated version is the one it asked for when warden can serve it
//!   (1.0, 1.1 or 1.2); a request for a newer 1.x negotiates v1.2, the callee's version,
//!   which the caller must then use. A different major version, or bit 31 set, gets
//!   NOT_SUPPORTED and changes nothing.
//! - Renegotiation is allowed until the host's first FF-A call other than FFA_VERSION:
//!   a loader at one version may hand over to a kernel at another (OP-TEE's SPMC allows
//!   the same). From then on the version is fixed: FFA_VERSION with the same version is
//!   answered as before, with a different one gets NOT_SUPPORTED.
//! - Only calls the host originates lock the version: nothing warden delivers to the
//!   host (such as FFA_INTERRUPT in a reply) does.
//! - A host that makes another FF-A call before any FFA_VERSION is served as v1.0, the
//!   version that predates negotiation, and that fixes its version at v1.0.
//! - Once the host lets go of everything it holds through warden, its version is open
//!   again as at boot, for the next kernel (`lifecycle.rs`, README "Host lifecycle").

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfaVersion {
    pub major: u16,
    pub minor: u16,
}

impl FfaVersion {
    pub const V1_0: Self = Self { major: 1, minor: 0 };
    pub const V1_1: Self = Self { major: 1, minor: 1 };
    pub const V1_2: Self = Self { major: 1, minor: 2 };
    /// What warden implements towards the host.
    pub const WARDEN: Self = Self::V1_2;

    /// Decodes `bit31 MBZ | major[30:16] | minor[15:0]`; `None` when bit 31 is set.
    pub fn decode(w: u32) -> Option<Self> {
        (w & (1 << 31) == 0).then_some(Self {
            major: (w >> 16) as u16,
            minor: w as u16,
        })
    }
    pub fn encode(self) -> u32 {
        (self.major as u32) << 16 | self.minor as u32
    }
}

/// Ordered by major, then minor: as their encodings (`encode`), which is one compare.
impl Ord for FfaVersion {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.encode().cmp(&other.encode())
    }
}

impl PartialOrd for FfaVersion {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for FfaVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// FFA_VERSION's reply when the request cannot be served: NOT_SUPPORTED in w0 itself
/// (§13.2.2: FFA_VERSION does not use FFA_ERROR).
pub const VERSION_NOT_SUPPORTED: u64 = 0xffff_ffff;

/// The host's side of the negotiation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiation {
    negotiated: Option<FfaVersion>,
    locked: bool,
}

impl Negotiation {
    /// Handles the host's FFA_VERSION(w1); returns w0 of the reply.
    pub fn request(&mut self, w1: u64) -> u64 {
        let Some(asked) = FfaVersion::decode(w1 as u32) else {
            return VERSION_NOT_SUPPORTED;
        };
        if asked.major != FfaVersion::WARDEN.major {
            return VERSION_NOT_SUPPORTED;
        }
        let serve = asked.min(FfaVersion::WARDEN);
        match self.negotiated {
            Some(current) if self.locked && current != serve => return VERSION_NOT_SUPPORTED,
            _ => self.negotiated = Some(serve),
        }
        FfaVersion::WARDEN.encode() as u64
    }

    /// Called for every other FF-A call the host makes: fixes the version, and returns
    /// the one to serve the call at.
    pub fn lock(&mut self) -> FfaVersion {
        self.locked = true;
        *self.negotiated.get_or_insert(FfaVersion::V1_0)
    }

    /// The host holds nothing any more: the next FFA_VERSION may choose again, as at boot.
    /// The version in force stays until then, so a call before it is served as before and
    /// fixes that version again.
    pub fn reopen(&mut self) {
        self.locked = false;
    }

    pub fn current(&self) -> Option<FfaVersion> {
        self.negotiated
    }
}

/// The host's negotiation as the CPUs share it: the state under a lock, and, once the
/// version is fixed, that version in an atomic too, so that every call after negotiation
/// (all of them but FFA_VERSION) reads it with one load instead of taking the lock to
/// write a `locked` that is already set (issue 15: the hot direct request).
pub struct HostVersion {
    negotiation: Mutex<Negotiation>,
    /// `FfaVersion::encode` of the version while it is fixed (`Negotiation::locked`), 0
    /// while it is open (no version encodes as 0: the major is 1). Written only with
    /// `negotiation` locked, so it is never out of step with it for longer than the lock
    /// is held.
    fixed: AtomicU32,
}

impl Default for HostVersion {
    fn default() -> Self {
        Self::new()
    }
}

impl HostVersion {
    pub const fn new() -> Self {
        Self {
            negotiation: Mutex::new(Negotiation {
                negotiated: None,
                locked: false,
            }),
            fixed: AtomicU32::new(0),
        }
    }

    /// The host's FFA_VERSION(w1): `Negotiation::request`. While the version is fixed it
    /// changes nothing (a different version is refused, the same one is kept), so `fixed`
    /// stays right.
    pub fn request(&self, w1: u64) -> u64 {
        self.negotiation.lock().request(w1)
    }

    /// Every other host FF-A call: `Negotiation::lock`. Once fixed, that is a read of the
    /// atomic: taking the lock would set `locked` again and return the same version.
    #[inline(always)]
    pub fn fix(&self) -> FfaVersion {
        match self.fixed() {
            Some(v) => v,
            None => self.fix_locked(),
        }
    }

    #[inline(never)]
    fn fix_locked(&self) -> FfaVersion {
        let mut n = self.negotiation.lock();
        let v = n.lock();
        self.fixed.store(v.encode(), Ordering::Release);
        v
    }

    /// `fix() >= v`, compared as encodings: what the hot direct request asks (are results
    /// x0-x17?), without decoding the atomic's value only to encode it again.
    #[inline(always)]
    pub fn fix_at_least(&self, v: FfaVersion) -> bool {
        match self.fixed.load(Ordering::Acquire) {
            0 => self.fix_locked() >= v,
            w => w >= v.encode(),
        }
    }

    /// The version in force if it is fixed.
    #[inline(always)]
    pub fn fixed(&self) -> Option<FfaVersion> {
        match self.fixed.load(Ordering::Acquire) {
            0 => None,
            w => FfaVersion::decode(w),
        }
    }

    /// `Negotiation::reopen`: the host holds nothing any more.
    pub fn reopen(&self) {
        let mut n = self.negotiation.lock();
        n.reopen();
        self.fixed.store(0, Ordering::Release);
    }

    pub fn current(&self) -> Option<FfaVersion> {
        self.negotiation.lock().current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: fn(u16, u16) -> u64 = |ma, mi| ((ma as u64) << 16) | mi as u64;

    #[test]
    fn answers_with_warden_version_and_records_request() {
        let mut n = Negotiation::default();
        assert_eq!(n.request(V(1, 1)), V(1, 2));
        assert_eq!(n.current(), Some(FfaVersion::V1_1));
        assert_eq!(n.request(V(1, 0)), V(1, 2));
        assert_eq!(n.current(), Some(FfaVersion::V1_0));
        // Newer minor: served at warden's.
        assert_eq!(n.request(V(1, 7)), V(1, 2));
        assert_eq!(n.current(), Some(FfaVersion::V1_2));
    }

    #[test]
    fn rejects_other_majors_and_bit31_without_change() {
        let mut n = Negotiation::default();
        n.request(V(1, 1));
        assert_eq!(n.request(V(2, 0)), VERSION_NOT_SUPPORTED);
        assert_eq!(n.request(V(0, 9)), VERSION_NOT_SUPPORTED);
        assert_eq!(n.request(0x8001_0002), VERSION_NOT_SUPPORTED);
        assert_eq!(n.current(), Some(FfaVersion::V1_1));
    }

    #[test]
    fn renegotiation_until_first_other_call() {
        let mut n = Negotiation::default();
        n.request(V(1, 0));
        n.request(V(1, 2));
        assert_eq!(n.lock(), FfaVersion::V1_2);
        assert_eq!(n.request(V(1, 2)), V(1, 2), "same version: answered");
        assert_eq!(
            n.request(V(1, 1)),
            VERSION_NOT_SUPPORTED,
            "different: refused"
        );
        assert_eq!(
            n.request(V(1, 9)),
            V(1, 2),
            "serves as 1.2, the locked version"
        );
        assert_eq!(n.current(), Some(FfaVersion::V1_2));
    }

    #[test]
    fn reopened_negotiation_is_the_boot_rule_again() {
        let mut n = Negotiation::default();
        n.request(V(1, 1));
        assert_eq!(n.lock(), FfaVersion::V1_1);
        n.reopen();
        // The next kernel chooses, and may change its mind until its first other call.
        assert_eq!(n.request(V(1, 0)), V(1, 2));
        assert_eq!(n.request(V(1, 2)), V(1, 2));
        assert_eq!(n.lock(), FfaVersion::V1_2);
        assert_eq!(n.request(V(1, 1)), VERSION_NOT_SUPPORTED);
        // Reopened, but a call comes before any FFA_VERSION: the version in force stays.
        n.reopen();
        assert_eq!(n.lock(), FfaVersion::V1_2);
        assert_eq!(n.request(V(1, 0)), VERSION_NOT_SUPPORTED);
    }

    #[test]
    fn call_before_version_means_v1_0() {
        let mut n = Negotiation::default();
        assert_eq!(n.lock(), FfaVersion::V1_0);
        assert_eq!(n.request(V(1, 1)), VERSION_NOT_SUPPORTED);
        assert_eq!(n.request(V(1, 0)), V(1, 2));
    }

    #[test]
    fn the_shared_version_is_fixed_by_the_first_other_call_and_reopened() {
        let v = HostVersion::new();
        assert_eq!(v.fixed(), None);
        assert_eq!(v.request(V(1, 1)), V(1, 2));
        assert_eq!(v.fixed(), None, "FFA_VERSION alone fixes nothing");
        assert_eq!(v.request(V(1, 2)), V(1, 2));
        assert!(v.fix_at_least(FfaVersion::V1_2));
        assert!(!v.fix_at_least(FfaVersion { major: 1, minor: 3 }));
        assert_eq!(v.fix(), FfaVersion::V1_2);
        assert_eq!(v.fixed(), Some(FfaVersion::V1_2));
        // Fixed: a different version is refused and the fast read does not change.
        assert_eq!(v.request(V(1, 0)), VERSION_NOT_SUPPORTED);
        assert_eq!(v.fix(), FfaVersion::V1_2);
        assert_eq!(v.request(V(1, 2)), V(1, 2));
        assert_eq!(v.fixed(), Some(FfaVersion::V1_2));
        // Reopened: open again until the next call other than FFA_VERSION.
        v.reopen();
        assert_eq!(v.fixed(), None);
        assert_eq!(v.request(V(1, 0)), V(1, 2));
        assert_eq!(v.current(), Some(FfaVersion::V1_0));
        assert!(
            !v.fix_at_least(FfaVersion::V1_1),
            "fixes v1.0 as `fix` does"
        );
        assert_eq!(v.fixed(), Some(FfaVersion::V1_0));
        assert_eq!(v.fix(), FfaVersion::V1_0);
        assert_eq!(v.fixed(), Some(FfaVersion::V1_0));
        assert_eq!(v.request(V(1, 1)), VERSION_NOT_SUPPORTED);
    }

    #[test]
    fn a_call_before_any_version_fixes_v1_0_in_the_shared_version() {
        let v = HostVersion::default();
        assert_eq!(v.fix(), FfaVersion::V1_0);
        assert_eq!(v.fixed(), Some(FfaVersion::V1_0));
        assert_eq!(v.request(V(1, 2)), VERSION_NOT_SUPPORTED);
    }

    #[test]
    fn versions_order_by_major_then_minor() {
        let all = [
            (0, 0),
            (0, 0xffff),
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 0),
            (0x7fff, 0xffff),
        ];
        for (a, b) in all.iter().flat_map(|a| all.iter().map(move |b| (a, b))) {
            let (va, vb) = (
                FfaVersion {
                    major: a.0,
                    minor: a.1,
                },
                FfaVersion {
                    major: b.0,
                    minor: b.1,
                },
            );
            assert_eq!(va.cmp(&vb), a.cmp(b), "{va} vs {vb}");
        }
    }
}
