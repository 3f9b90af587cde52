//! SMP stress: every CPU runs direct requests and share/lend/reclaim loops at once, on
//! pages of one 2 MiB block, so that each lend splits a block other CPUs are writing
//! (break-before-make under load). At the end every handle is reclaimed.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;
use warden::ffa::version::FfaVersion;

use warden::ffa::abi::{FFA_SUCCESS_32, fid32, fid64, num};

use super::mem_checks;
use super::smc;

pub const ITERATIONS: u64 = 200;
const MAX_CPUS: usize = 4;

/// Set by the boot CPU before it starts the others.
pub static SCRATCH: AtomicU64 = AtomicU64::new(0);
pub static TX: AtomicU64 = AtomicU64::new(0);
pub static VERSION: AtomicU64 = AtomicU64::new(0);
/// Iterations each CPU completed, and failed operations.
pub static DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
pub static FAILED: AtomicU64 = AtomicU64::new(0);
/// The first failure: which operation (1 direct request, 2 share/lend, 3 reclaim) and
/// the x0/x2 of its answer.
pub static FIRST_FAILURE: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// The host has one TX buffer: like Linux, it serialises its use.
static TX_LOCK: Mutex<()> = Mutex::new(());

fn fail(op: u64, r: &[u64; 18]) {
    if FAILED.fetch_add(1, Ordering::Relaxed) == 0 {
        FIRST_FAILURE[0].store(op, Ordering::Relaxed);
        FIRST_FAILURE[1].store(r[0], Ordering::Relaxed);
        FIRST_FAILURE[2].store(r[2], Ordering::Relaxed);
    }
}

pub fn worker(cpu: usize) {
    let scratch = SCRATCH.load(Ordering::Acquire);
    let tx = TX.load(Ordering::Acquire);
    let v = FfaVersion::decode(VERSION.load(Ordering::Acquire) as u32).unwrap_or(FfaVersion::V1_2);
    let page = scratch + 0x2000 * cpu as u64;
    let Some(done) = DONE.get(cpu) else { return };
    for i in 0..ITERATIONS {
        let d = smc(fid32(num::MSG_SEND_DIRECT_REQ), &[0x8001, 0, 0]);
        if d[0] != u64::from(fid32(num::MSG_SEND_DIRECT_RESP)) || d[3] != 1 {
            fail(1, &d);
        }
        // SAFETY: this CPU's own scratch page, host RAM, unless it is lent right now
        // (it is not: lends are reclaimed before the loop continues).
        unsafe { (page as *mut u64).write_volatile(i) };
        if i % 4 == 0 {
            let lend = i % 8 == 0;
            let desc = mem_checks::desc(v, &[(page, 1)], lend);
            let r = {
                let _tx = TX_LOCK.lock();
                let fid = fid64(if lend { num::MEM_LEND } else { num::MEM_SHARE });
                mem_checks::send(fid, &desc, tx)
            };
            match mem_checks::handle_of(&r) {
                Some(h) => {
                    let rc = mem_checks::reclaim(h);
                    if rc[0] != u64::from(FFA_SUCCESS_32) {
                        fail(3, &rc);
                    }
                }
                None => fail(2, &r),
            }
        }
        done.store(i + 1, Ordering::Release);
    }
}
