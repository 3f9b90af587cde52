//! Notifications (DEN0077A v1.2 §13.18-13.24): the host receives notifications from
//! secure partitions; warden checks every ID and passes only the argument registers.

use alloc::vec::Vec;

use super::{FfaProxy, ProxyEnv, SpmcInfo};
use crate::ffa::abi::{self, FfaError, FfaFunction, Regs, num};

impl FfaProxy {
    /// The bitmap is the host's (VM ID = host ID), BIND/UNBIND bind a listed partition as
    /// sender to the host as receiver, GET reads the host's own. SET is not offered:
    /// OP-TEE's SPMC does not accept it from the normal world.
    pub(super) fn notification(
        &self,
        f: FfaFunction,
        regs: &Regs,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        let w1 = regs[1] as u32;
        let (hi, lo) = ((w1 >> 16) as u16, w1 as u16);
        let host = spmc.host_id;
        // The host's bitmap, as the SPMC last confirmed it. CREATE and DESTROY hold the
        // lock across the SPMC's answer, so that two CPUs cannot both create or destroy
        // it; the other calls only read it and do not serialise the CPUs.
        let creates_or_destroys = matches!(
            f.num,
            num::NOTIFICATION_BITMAP_CREATE | num::NOTIFICATION_BITMAP_DESTROY
        );
        let mut held = creates_or_destroys.then(|| self.bitmap.lock());
        let bitmap = match &held {
            Some(guard) => **guard,
            None => *self.bitmap.lock(),
        };
        match f.num {
            // A second bitmap, or destroying one that does not exist: DENIED (§13.18,
            // §13.19; Hafnium's SPMC and the FF-A ACS agree). OP-TEE's SPMC answers SUCCESS
            // to the destroy, so warden keeps the state itself. Pending notifications are
            // the SPMC's to refuse: warden cannot see them without consuming them.
            num::NOTIFICATION_BITMAP_CREATE if w1 == u32::from(host) && bitmap.is_some() => {
                return Err(FfaError::Denied);
            }
            num::NOTIFICATION_BITMAP_DESTROY if w1 == u32::from(host) && bitmap.is_none() => {
                return Err(FfaError::Denied);
            }
            // w1[31:16] is a vCPU ID: one of those the bitmap was created for (§13.23).
            num::NOTIFICATION_GET
                if lo == host && bitmap.is_some_and(|vcpus| u32::from(hi) >= vcpus) =>
            {
                return Err(FfaError::InvalidParameters);
            }
            _ => {}
        }
        let args: &[u64] = match f.num {
            // w1 = VM ID, w2 = vCPU count.
            num::NOTIFICATION_BITMAP_CREATE if w1 == u32::from(host) => &regs[1..3],
            num::NOTIFICATION_BITMAP_DESTROY if w1 == u32::from(host) => &regs[1..2],
            // w1 = sender [31:16] | receiver [15:0], w2 flags, w3-w4 bitmap.
            num::NOTIFICATION_BIND | num::NOTIFICATION_UNBIND
                if lo == host && spmc.is_partition(hi) =>
            {
                &regs[1..5]
            }
            // w1 = vCPU [31:16] | receiver [15:0], w2 flags.
            num::NOTIFICATION_GET if lo == host => &regs[1..3],
            num::NOTIFICATION_INFO_GET => &[],
            _ => return Err(FfaError::InvalidParameters),
        };
        let mask = if f.is_64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let args: Vec<u64> = args.iter().map(|a| a & mask).collect();
        let r = env.spmc_call(&abi::call_regs(f.fid(), &args));
        if let Some(guard) = held.as_mut()
            && abi::expect_success(&r).is_ok()
        {
            **guard = match f.num {
                num::NOTIFICATION_BITMAP_CREATE => Some(regs[2] as u32),
                _ => None,
            };
        }
        Ok(r)
    }
}
