//! Exception syndromes (ESR_ELx) and the exceptions warden injects into the host.
//! Arm ARM DDI 0487, D24.2.40 (ESR_EL2) and D1.10 (exception entry).

/// The exception classes warden handles (ESR_ELx.EC, bits [31:26]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    Unknown,
    Hvc64,
    Smc64,
    InstructionAbortLower,
    InstructionAbortSame,
    DataAbortLower,
    DataAbortSame,
    Other(u8),
}

impl ExceptionClass {
    pub fn from_esr(esr: u64) -> Self {
        match ((esr >> 26) & 0x3f) as u8 {
            0x00 => Self::Unknown,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x20 => Self::InstructionAbortLower,
            0x21 => Self::InstructionAbortSame,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            ec => Self::Other(ec),
        }
    }
}

/// ESR.IL: the trapped instruction was 32 bits wide.
const ESR_IL: u64 = 1 << 25;
/// Fault status code "synchronous external abort, not on a table walk".
const FSC_EXTERNAL_ABORT: u64 = 0x10;
/// ESR_ELx.ISS.WnR for data aborts.
const ESR_WNR: u64 = 1 << 6;

/// Which kind of exception to inject into the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// A synchronous external abort on a data access (`write` = the access was a store).
    DataAbort { write: bool },
    /// A synchronous external abort on an instruction fetch.
    InstructionAbort,
    /// An undefined instruction.
    Undefined,
}

/// The host's EL1 state that an injected exception changes, and the EL2 return state
/// that makes `eret` land on the host's vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectedException {
    pub esr_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub elr_el2: u64,
    pub spsr_el2: u64,
}

/// What PSTATE becomes on an exception taken to EL1, beyond the mode and DAIF: it depends
/// on the host's SCTLR_EL1 and on which features the CPU has (DDI 0487 D1.10.2, "PSTATE on
/// taking an exception to an Exception level").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1Entry {
    pub sctlr_el1: u64,
    /// FEAT_PAN (ID_AA64MMFR1_EL1.PAN != 0).
    pub pan: bool,
    /// FEAT_SSBS (ID_AA64PFR1_EL1.SSBS != 0).
    pub ssbs: bool,
    /// FEAT_MTE (ID_AA64PFR1_EL1.MTE != 0): PSTATE.TCO exists.
    pub mte: bool,
}

// SPSR/PSTATE bits (DDI 0487 C5.2.19, SPSR_EL2 in AArch64).
const PSTATE_SSBS: u64 = 1 << 12;
const PSTATE_PAN: u64 = 1 << 22;
const PSTATE_DIT: u64 = 1 << 24;
const PSTATE_TCO: u64 = 1 << 25;
// SCTLR_EL1 bits.
const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;

impl El1Entry {
    /// PSTATE on entry to EL1h from an interrupted context whose PSTATE was `spsr`.
    pub fn pstate(&self, spsr: u64) -> u64 {
        // EL1h with D, A, I and F masked; BTYPE, SS, IL, UAO cleared.
        let mut p = 0b1111 << 6 | 0b0101;
        // DIT is kept (FEAT_DIT).
        p |= spsr & PSTATE_DIT;
        // PAN: set when SCTLR_EL1.SPAN is 0, else kept.
        if self.pan && (self.sctlr_el1 & SCTLR_SPAN == 0 || spsr & PSTATE_PAN != 0) {
            p |= PSTATE_PAN;
        }
        // SSBS: SCTLR_EL1.DSSBS.
        if self.ssbs && self.sctlr_el1 & SCTLR_DSSBS != 0 {
            p |= PSTATE_SSBS;
        }
        // TCO: set (tag checks off in the handler until it says otherwise).
        if self.mte {
            p |= PSTATE_TCO;
        }
        p
    }
}

/// Computes how to deliver `kind` to the host as if the exception had been taken to EL1
/// from the interrupted context (`elr`, `spsr`), with the host's vectors at `vbar_el1`.
/// Mirrors the architectural exception entry to EL1 (DDI 0487 D1.10.2).
pub fn inject(
    kind: Injection,
    elr: u64,
    spsr: u64,
    vbar_el1: u64,
    entry: &El1Entry,
) -> InjectedException {
    let mode = spsr & 0xf;
    let from_el1 = mode == 0b0100 || mode == 0b0101;
    // Vector offset: current EL with SP_EL0 (0x000), current EL with SP_ELx (0x200),
    // lower EL AArch64 (0x400). Synchronous exceptions are at +0 within each group.
    let offset = match mode {
        0b0100 => 0x000,
        0b0101 => 0x200,
        _ => 0x400,
    };
    let ec: u64 = match (kind, from_el1) {
        (Injection::DataAbort { .. }, true) => 0x25,
        (Injection::DataAbort { .. }, false) => 0x24,
        (Injection::InstructionAbort, true) => 0x21,
        (Injection::InstructionAbort, false) => 0x20,
        (Injection::Undefined, _) => 0x00,
    };
    let iss = match kind {
        Injection::DataAbort { write } => FSC_EXTERNAL_ABORT | if write { ESR_WNR } else { 0 },
        Injection::InstructionAbort => FSC_EXTERNAL_ABORT,
        Injection::Undefined => 0,
    };
    InjectedException {
        esr_el1: ec << 26 | ESR_IL | iss,
        elr_el1: elr,
        spsr_el1: spsr,
        elr_el2: vbar_el1 + offset,
        spsr_el2: entry.pstate(spsr),
    }
}

/// A data-cache maintenance instruction by set/way (DC ISW, DC CSW, DC CISW), trapped with
/// HCR_EL2.TSW: EC 0x18 with Op0 1, Op1 0, CRn 7, Op2 2 and CRm 6, 10 or 14 (DDI 0487
/// C5.3, "DC ISW"...; ISS encoding for EC 0x18: Op0 [21:20], Op2 [19:17], Op1 [16:14],
/// CRn [13:10], Rt [9:5], CRm [4:1], direction [0]). Returns Rt.
pub fn set_way_op(esr: u64) -> Option<u8> {
    if (esr >> 26) & 0x3f != 0x18 {
        return None;
    }
    let op0 = esr >> 20 & 3;
    let op2 = esr >> 17 & 7;
    let op1 = esr >> 14 & 7;
    let crn = esr >> 10 & 0xf;
    let rt = (esr >> 5 & 0x1f) as u8;
    let crm = esr >> 1 & 0xf;
    let write = esr & 1 == 0;
    (op0 == 1 && op1 == 0 && crn == 7 && op2 == 2 && matches!(crm, 6 | 10 | 14) && write)
        .then_some(rt)
}

/// What an abort's fault status code (ISS.DFSC/IFSC, bits [5:0]) says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No valid descriptor (levels -1 to 3): the only kind a break-before-make window causes.
    Translation,
    /// A valid descriptor that does not allow the access (write to read-only, fetch from
    /// execute-never, device memory included).
    Permission,
    /// Access flag, alignment, external aborts, TLB conflicts and the rest.
    Other,
}

/// Decodes the fault status code of an instruction or data abort syndrome
/// (DDI 0487, ESR_EL2 ISS encoding for aborts: DFSC/IFSC).
pub fn fault_kind(esr: u64) -> FaultKind {
    match esr & 0x3f {
        0b00_0100..=0b00_0111 | 0b10_1011 => FaultKind::Translation,
        0b00_1100..=0b00_1111 => FaultKind::Permission,
        _ => FaultKind::Other,
    }
}

/// ISS.WnR of a data abort syndrome.
pub fn is_write(esr: u64) -> bool {
    esr & ESR_WNR != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fault_kinds() {
        // Stage-2 translation fault, level 3, on a read.
        assert_eq!(fault_kind(0x9200_0007), FaultKind::Translation);
        assert_eq!(fault_kind(0x8200_0004), FaultKind::Translation);
        assert_eq!(fault_kind(0x9200_002b), FaultKind::Translation);
        // Permission faults, levels 1-3: instruction fetch from XN device memory, a write to
        // a read-only mapping.
        assert_eq!(fault_kind(0x8200_000f), FaultKind::Permission);
        assert_eq!(fault_kind(0x9200_004d), FaultKind::Permission);
        // Access flag, external abort, alignment.
        assert_eq!(fault_kind(0x9200_000b), FaultKind::Other);
        assert_eq!(fault_kind(0x9200_0010), FaultKind::Other);
        assert_eq!(fault_kind(0x9200_0021), FaultKind::Other);
    }

    #[test]
    fn decodes_classes() {
        assert_eq!(ExceptionClass::from_esr(0x5e00_0000), ExceptionClass::Smc64);
        assert_eq!(ExceptionClass::from_esr(0x5a00_0000), ExceptionClass::Hvc64);
        assert_eq!(
            ExceptionClass::from_esr(0x9200_0046),
            ExceptionClass::DataAbortLower
        );
        assert_eq!(
            ExceptionClass::from_esr(0x8200_0006),
            ExceptionClass::InstructionAbortLower
        );
        assert_eq!(
            ExceptionClass::from_esr(0x1 << 26),
            ExceptionClass::Other(1)
        );
    }

    #[test]
    fn data_abort_from_el1h_goes_to_current_spx_vector() {
        let e = inject(
            Injection::DataAbort { write: true },
            0x4800_1000,
            0x3c5,
            0x4808_0000,
            &El1Entry::default(),
        );
        assert_eq!(e.elr_el2, 0x4808_0200);
        assert_eq!(e.esr_el1 >> 26, 0x25);
        assert!(is_write(e.esr_el1));
        assert_eq!(e.esr_el1 & 0x3f, FSC_EXTERNAL_ABORT);
        assert_eq!(e.elr_el1, 0x4800_1000);
        assert_eq!(e.spsr_el1, 0x3c5);
        assert_eq!(e.spsr_el2, 0x3c5);
    }

    #[test]
    fn abort_from_el0_goes_to_lower_vector() {
        let none = El1Entry::default();
        let e = inject(Injection::InstructionAbort, 0x1000, 0x0, 0x8000, &none);
        assert_eq!(e.elr_el2, 0x8400);
        assert_eq!(e.esr_el1 >> 26, 0x20);
        let e = inject(Injection::Undefined, 0x1000, 0x4, 0x8000, &none);
        assert_eq!(e.elr_el2, 0x8000);
        assert_eq!(e.esr_el1 >> 26, 0);
    }

    #[test]
    fn injected_pstate_follows_pan_ssbs_and_mte() {
        let all = El1Entry {
            sctlr_el1: 0,
            pan: true,
            ssbs: true,
            mte: true,
        };
        // SPAN 0: PAN set; DSSBS 0: SSBS clear; TCO set; an interrupted SSBS is not kept.
        let p = all.pstate(0x3c5 | PSTATE_SSBS);
        assert_eq!(p, 0x3c5 | PSTATE_PAN | PSTATE_TCO);
        // SPAN 1: PAN kept from the interrupted context; DSSBS 1: SSBS set.
        let span = El1Entry {
            sctlr_el1: SCTLR_SPAN | SCTLR_DSSBS,
            ..all
        };
        assert_eq!(span.pstate(0x3c5), 0x3c5 | PSTATE_SSBS | PSTATE_TCO);
        assert_eq!(
            span.pstate(0x3c5 | PSTATE_PAN),
            0x3c5 | PSTATE_PAN | PSTATE_SSBS | PSTATE_TCO
        );
        // DIT is kept; UAO (bit 23) and BTYPE are not.
        assert_eq!(
            El1Entry::default().pstate(PSTATE_DIT | 1 << 23 | 3 << 10),
            0x3c5 | PSTATE_DIT
        );
        // Without the features, none of those bits.
        assert_eq!(El1Entry::default().pstate(0), 0x3c5);
    }

    #[test]
    fn decodes_set_way_operations() {
        let sys = |op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: u64| {
            0x18 << 26
                | 1 << 25
                | 1 << 20
                | op2 << 17
                | op1 << 14
                | crn << 10
                | rt << 5
                | crm << 1
                | read
        };
        assert_eq!(set_way_op(sys(0, 7, 6, 2, 3, 0)), Some(3)); // DC ISW, x3
        assert_eq!(set_way_op(sys(0, 7, 10, 2, 31, 0)), Some(31)); // DC CSW, xzr
        assert_eq!(set_way_op(sys(0, 7, 14, 2, 0, 0)), Some(0)); // DC CISW
        assert_eq!(set_way_op(sys(0, 7, 6, 1, 0, 0)), None); // DC IVAC
        assert_eq!(set_way_op(sys(3, 7, 14, 1, 0, 0)), None); // DC CIVAC (Op1 3)
        assert_eq!(set_way_op(sys(0, 7, 14, 2, 0, 1)), None); // not a write form
        assert_eq!(set_way_op(0x17 << 26), None);
    }
}
