//! Values for warden's EL2 control registers that depend on what the CPU implements (read
//! from its ID registers), as pure functions the host tests check. `el2::init_cpu` writes
//! them. Field positions: DDI 0487 (ID_AA64DFR0_EL1 D23.2.59, ID_AA64MMFR0_EL1 D23.2.74,
//! ID_AA64PFR0_EL1 D23.2.82, ID_AA64SMFR0_EL1, MDCR_EL2 D23.2.107, SMCR_EL2).

fn field(reg: u64, shift: u32) -> u64 {
    reg >> shift & 0xf
}

/// ID_AA64DFR0_EL1.PMUVer: 0 none, 0xf IMPLEMENTATION DEFINED (not PMUv3).
fn pmu_version(dfr0: u64) -> Option<u64> {
    match field(dfr0, 8) {
        0 | 0xf => None,
        v => Some(v),
    }
}

// MDCR_EL2 bits.
const MDCR_HPMD: u64 = 1 << 17;
const MDCR_HCCD: u64 = 1 << 23;

/// MDCR_EL2: the host gets every event counter (HPMN = `pmcr_n`, PMCR_EL0.N), traps no
/// debug or PMU access, and nothing counts while warden runs: HPMD (FEAT_PMUv3p1,
/// PMUVer >= 4) stops event counters at EL2, HCCD (FEAT_PMUv3p5, PMUVer >= 6) the cycle
/// counter. A host that could count EL2 events could time warden's work on other
/// worlds' behalf. `bench` leaves EL2 counting on: a build for scripts/bench only
/// (`WARDEN_BENCH_EL2_PMU`), whose client measures warden's instructions with the PMU.
pub fn mdcr_el2(pmcr_n: u64, dfr0: u64, bench: bool) -> u64 {
    let mut v = pmcr_n & 0x1f;
    if bench {
        return v;
    }
    if let Some(pmu) = pmu_version(dfr0) {
        if pmu >= 4 {
            v |= MDCR_HPMD;
        }
        if pmu >= 6 {
            v |= MDCR_HCCD;
        }
    }
    v
}

/// FEAT_TRF (ID_AA64DFR0_EL1.TraceFilt): TRFCR_EL2 exists; warden writes 0 (no trace at
/// EL2; its reset value is UNKNOWN).
pub fn has_trace_filter(dfr0: u64) -> bool {
    field(dfr0, 40) != 0
}

/// FEAT_SPE (ID_AA64DFR0_EL1.PMSVer): PMSCR_EL2 exists; warden writes 0 (no profiling at
/// EL2).
pub fn has_spe(dfr0: u64) -> bool {
    field(dfr0, 32) != 0
}

/// FEAT_FGT (ID_AA64MMFR0_EL1.FGT >= 1) and FEAT_FGT2 (>= 2).
pub fn fgt_level(mmfr0: u64) -> u64 {
    field(mmfr0, 56)
}

/// FEAT_AMUv1 (ID_AA64PFR0_EL1.AMU): with FEAT_FGT, HAFGRTR_EL2 exists (all its bits trap
/// when 1: warden writes 0).
pub fn has_amu(pfr0: u64) -> bool {
    field(pfr0, 44) != 0
}

/// FEAT_FGT2's registers with no trap: their `n`-prefixed bits trap when 0, so they are
/// set; every other bit is a trap-when-1 control and stays 0.
/// HFGRTR2_EL2: nPFAR_EL1 (0) .. nACTLRALIAS_EL1 (14).
pub const HFGRTR2_NO_TRAP: u64 = 0x7fff;
/// HFGWTR2_EL2: as HFGRTR2_EL2 without bit 1 (nERXGSR_EL1 is read-only, RES0 here).
pub const HFGWTR2_NO_TRAP: u64 = 0x7ffd;
/// HFGITR2_EL2: nDCCIVAPS (0); TSBCSYNC (1) stays 0.
pub const HFGITR2_NO_TRAP: u64 = 0x1;
/// HDFGRTR2_EL2 and HDFGWTR2_EL2: nPMECR_EL1 (0) .. nSPMCR_EL0 (14), all `n` controls.
pub const HDFGRTR2_NO_TRAP: u64 = 0x7fff;
pub const HDFGWTR2_NO_TRAP: u64 = 0x7fff;

/// SMCR_EL2 for a CPU with SME (ID_AA64PFR1_EL1.SME != 0): the longest streaming vectors
/// (LEN = 0xf, as ZCR_EL2), and no trap of what the host's SME may use: FA64 (bit 31) when
/// ID_AA64SMFR0_EL1.FA64 (bit 63), EZT0 (bit 30) with SME2 (SMEver, [59:56], >= 1).
pub fn smcr_el2(smfr0: u64) -> u64 {
    let mut v = 0xf;
    if smfr0 >> 63 & 1 != 0 {
        v |= 1 << 31;
    }
    if field(smfr0, 56) >= 1 {
        v |= 1 << 30;
    }
    v
}

/// FEAT_SME (ID_AA64PFR1_EL1.SME, [27:24]).
pub fn has_sme(pfr1: u64) -> bool {
    field(pfr1, 24) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdcr_stops_pmu_counting_at_el2_when_the_pmu_can() {
        // PMUv3 (1): only HPMN. PMUv3p1 (4): HPMD. PMUv3p5 (6): HPMD and HCCD.
        assert_eq!(mdcr_el2(6, 1 << 8, false), 6);
        assert_eq!(mdcr_el2(6, 4 << 8, false), 6 | MDCR_HPMD);
        assert_eq!(mdcr_el2(31, 6 << 8, false), 31 | MDCR_HPMD | MDCR_HCCD);
        // No PMU, or an IMPLEMENTATION DEFINED one: nothing to set.
        assert_eq!(mdcr_el2(0, 0, false), 0);
        assert_eq!(mdcr_el2(0, 0xf << 8, false), 0);
        // QEMU's max CPU (PMUVer 6 since QEMU 7.1 reports PMUv3p5 or p4).
        assert_eq!(mdcr_el2(6, 5 << 8, false) & MDCR_HPMD, MDCR_HPMD);
        // The benchmark build counts at EL2.
        assert_eq!(mdcr_el2(6, 6 << 8, true), 6);
    }

    #[test]
    fn features_from_id_registers() {
        assert!(has_trace_filter(1 << 40));
        assert!(!has_trace_filter(0xf << 36));
        assert!(has_spe(1 << 32));
        assert_eq!(fgt_level(2 << 56), 2);
        assert!(has_amu(1 << 44));
        assert!(has_sme(1 << 24));
        assert!(!has_sme(1 << 28));
    }

    #[test]
    fn smcr_gives_the_host_all_of_sme() {
        assert_eq!(smcr_el2(0), 0xf);
        assert_eq!(smcr_el2(1 << 63), 0xf | 1 << 31);
        assert_eq!(smcr_el2(1 << 63 | 1 << 56), 0xf | 1 << 31 | 1 << 30);
    }
}
