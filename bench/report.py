#!/usr/bin/env python3
"""Turns the benchmark client's console logs into tables, JSON and a baseline comparison.

scripts/bench runs the client twice (under warden, and alone as BL33 without warden) and
calls this with both normal-world console logs. The client prints `bench: <kind> key=value`
lines (bench/src/ops.rs); results carry median/min/max/mean per counter view.
Standard library only.
"""

import argparse
import datetime
import json
import os
import sys

SCHEMA = 1
VIEWS = ("all", "pmu", "el2", "el3", "sel1", "cycles")
# A change counts when it exceeds either threshold.
REGRESSION_PERCENT = 5.0
REGRESSION_INSTRUCTIONS = 50
# Issue 15's targets: (name, how it is computed, limit). Each value is in instructions;
# "added" is all ELs with warden minus without, "el2" is warden's own work, "per range" is
# (added at 16 ranges - added at 1) / 15. A lend's SPMC work is the same with and without
# warden and OP-TEE refuses large lends without it, so a lend's cost is warden's EL2 count.
TARGETS = (
    ("null HVC at EL2", ("el2", "hvc_warden_version"), 120),
    ("SMCCC_VERSION added", ("added", "smccc_version"), 150),
    ("FFA_VERSION added", ("added", "ffa_version"), 0),
    ("FFA_ID_GET added", ("added", "ffa_id_get"), 0),
    ("FFA_FEATURES added", ("added", "ffa_features_rxtx_map"), 0),
    ("DIRECT_REQ added", ("added", "direct_req_optee_api_version"), 200),
    ("DIRECT_REQ_64 added", ("added", "direct_req64_optee_api_version"), 200),
    ("PARTITION_INFO_GET + RX_RELEASE added", ("added", "partition_info_get_rx_release"), 0),
    ("MEM_SHARE+RECLAIM 1 page added", ("added", "mem_share_reclaim_1"), 2500),
    ("MEM_SHARE each extra range", ("per_range", "mem_share_reclaim_16", "mem_share_reclaim_1"), 150),
    ("MEM_SHARE 4096 pages in 1 range over 1 page", ("growth", "mem_share_reclaim_4096_contiguous",
                                                     "mem_share_reclaim_1"), 100),
    ("MEM_LEND+RECLAIM 4000 ranges, warden (EL2)", ("el2", "mem_lend_reclaim_4000"), 2_000_000),
    ("warden boot", ("boot",), 1_000_000),
)
# What the baseline comparison looks at: (mode, view, label).
COMPARED = (
    ("warden", "all", "with warden, all ELs"),
    ("warden", "el2", "warden's own EL2 instructions"),
    ("native", "all", "without warden, all ELs"),
)
DESCRIPTIONS = {
    "hvc_warden_version": "HVC WARDEN_VERSION (null call to warden)",
    "smccc_version": "SMC SMCCC_VERSION (to EL3)",
    "ffa_version": "FFA_VERSION(1.2)",
    "ffa_id_get": "FFA_ID_GET",
    "ffa_features_rxtx_map": "FFA_FEATURES(RXTX_MAP_64)",
    "direct_req_optee_api_version": "DIRECT_REQ to OP-TEE (GET_API_VERSION)",
    "direct_req64_optee_api_version": "DIRECT_REQ_64 to OP-TEE (GET_API_VERSION)",
    "partition_info_get_rx_release": "PARTITION_INFO_GET + RX_RELEASE",
}


def describe(op):
    if op in DESCRIPTIONS:
        return DESCRIPTIONS[op]
    for kind in ("share", "lend"):
        prefix = f"mem_{kind}_reclaim_"
        if not op.startswith(prefix):
            continue
        rest = op[len(prefix):]
        contiguous = rest.endswith("_contiguous")
        pages = int(rest.split("_")[0]) if rest.split("_")[0].isdigit() else rest
        ranges = 1 if contiguous else pages
        return (f"MEM_{kind.upper()}+RECLAIM {pages} page{'s' if pages != 1 else ''},"
                f" {ranges} range{'s' if ranges != 1 else ''}")
    return op


def parse_value(v):
    if "/" in v:
        parts = v.split("/")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            return dict(zip(("median", "min", "max", "mean"), map(int, parts)))
    if v.isdigit():
        return int(v)
    if v in ("true", "false"):
        return v == "true"
    return v


def parse_log(path):
    """One run's facts: what the client printed, or what is missing."""
    run = {"finished": False, "errors": None, "ops": {}, "order": [], "probes": {},
           "boot": {}, "pmu": {}, "ffa": {}, "el": None, "problems": []}
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        run["problems"].append(f"cannot read {path}: {e}")
        return run
    for line in lines:
        if not line.startswith("bench: "):
            continue
        words = line[len("bench: "):].split()
        if not words:
            continue
        kind, fields = words[0], {}
        for w in words[1:]:
            if "=" in w:
                k, v = w.split("=", 1)
                fields[k] = parse_value(v)
        if kind == "done":
            run["finished"] = True
        elif kind == "FAILED":
            run["finished"] = True
            run["problems"].append("the client reported FAILED")
        elif kind == "summary":
            run["errors"] = fields.get("errors")
        elif kind == "start":
            run["el"] = fields.get("el")
        elif kind == "pmu":
            run["pmu"] = fields
        elif kind == "probe":
            run["probes"][fields.pop("op", "?")] = fields
        elif kind == "boot":
            run["boot"].update(fields)
        elif kind == "ffa":
            run["ffa"].update(fields)
        elif kind == "result":
            op = fields.pop("op", "?")
            run["ops"][op] = fields
            run["order"].append(op)
        elif kind in ("panic:", "unexpected", "PMU"):
            run["problems"].append(line)
    if not run["finished"]:
        run["problems"].append(f"no 'bench: done' in {path} (crashed or timed out?)")
    return run


def median(result, view="all"):
    if result and result.get("status") == "ok" and isinstance(result.get(view), dict):
        return result[view]["median"]
    return None


def status_text(result):
    if result is None:
        return "missing"
    s = result.get("status")
    if s == "ok":
        return "ok"
    if s == "n/a":
        return "n/a"
    if s == "refused":
        return f"n/a ({result.get('detail')})"
    return f"ERROR ({result.get('detail')})"


def cell(result, view="all"):
    m = median(result, view)
    if m is None:
        return status_text(result)
    r = result[view]
    if r["min"] == r["max"]:
        return f"{r['median']:,}"
    return f"{r['median']:,} ({r['min']:,}-{r['max']:,})"


def table(headers, rows, right=()):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    out = []
    for i, row in enumerate([headers] + rows):
        out.append("  ".join(
            str(x).rjust(w) if (j in right and i) else str(x).ljust(w)
            for j, (x, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def build(warden, native, meta):
    order = list(warden["order"]) + [op for op in native["order"] if op not in warden["order"]]
    ops = []
    for op in order:
        w, n = warden["ops"].get(op), native["ops"].get(op)
        mw, mn = median(w), median(n)
        entry = {"op": op, "description": describe(op), "warden": w, "native": n,
                 "added": None, "ratio": None}
        if mw is not None and mn is not None:
            entry["added"] = mw - mn
            entry["ratio"] = round(mw / mn, 3) if mn else None
        ops.append(entry)
    modes = {}
    for name, run in (("warden", warden), ("native", native)):
        modes[name] = {k: run[k] for k in
                       ("finished", "errors", "el", "pmu", "probes", "boot", "ffa", "problems")}
    return {"schema": SCHEMA, "meta": meta, "modes": modes, "ops": ops}


def print_ops(ops, headers, cells, right=frozenset()):
    """One row per operation: its description, then cells(entry, warden, native)."""
    rows = [[e["description"], *cells(e, e["warden"], e["native"])] for e in ops]
    print(table(["operation", *headers], rows, right=right))


def print_tables(data):
    ops = data["ops"]
    print("Instructions per call at every EL (generic counter at 1 GHz under QEMU -icount shift=0:")
    print("one tick per instruction, normal and secure world): median (min-max) over the")
    print("iterations, one number where every iteration counted the same.")
    print()
    def every_el(e, w, n):
        iters = max((r or {}).get("iters", 0) or 0 for r in (w, n))
        return [f"{iters:,}", cell(w), cell(n),
                f"{e['added']:+,}" if e["added"] is not None else "-",
                f"{e['ratio']:.2f}x" if e["ratio"] is not None else "-"]
    print_ops(ops, ["iters", "with warden", "without warden", "added", "ratio"], every_el,
              right={1, 4, 5})
    refused = [e["op"] for e in ops if e["op"].startswith("mem_share")
               and any((r or {}).get("detail") == "INVALID_PARAMETERS"
                       for r in (e["warden"], e["native"]))]
    if refused:
        print()
        print("MEM_SHARE refused with INVALID_PARAMETERS: OP-TEE 4.10 refuses every transaction that")
        print("reaches it in more than one fragment (bench/README.md, \"Fragmented shares\").")
    print()
    print("Normal world only (PMU INST_RETIRED; EL3 and S-EL1 are prohibited from counting on")
    print("this firmware). Under warden: the client at EL1 plus warden at EL2; EL2 alone is")
    print("warden's own work. Without warden: the client at EL2 (the SMC itself).")
    print()
    print_ops(ops, ["with warden: EL1+EL2", "warden (EL2)", "without warden"],
              lambda e, w, n: [cell(w, "pmu"), cell(w, "el2"), cell(n, "pmu")])


def print_facts(data):
    modes = data["modes"]
    print()
    print("What the counters count (measured by the client, window cost removed):")
    for name in ("warden", "native"):
        m = modes[name]
        p, nop = m["pmu"], m["probes"].get("nop1000")
        where = "EL1 under warden" if name == "warden" else "EL2 without warden"
        if nop:
            print(f"  {where}: 1000 nops -> counter {nop.get('all')}, INST_RETIRED {nop.get('pmu')}"
                  f" (EL2-only {nop.get('el2')}), cycles {nop.get('cycles')}"
                  f"; PMCR_EL0 {p.get('pmcr')}, PMUVer {p.get('pmuver')}")
    nw = {e["op"]: e for e in data["ops"]}
    s = nw.get("smccc_version", {}).get("native")
    if median(s) is not None:
        print(f"  SMCCC_VERSION without warden (EL3 round trip): counter {s['all']['median']},"
              f" INST_RETIRED {s['pmu']['median']} (EL3-only {s['el3']['median']},"
              f" S-EL1-only {s['sel1']['median']}), cycles {s['cycles']['median']}")
    d = nw.get("direct_req_optee_api_version", {}).get("native")
    if median(d) is not None:
        print(f"  DIRECT_REQ without warden (EL3 + OP-TEE): counter {d['all']['median']},"
              f" INST_RETIRED {d['pmu']['median']} (S-EL1-only {d['sel1']['median']}),"
              f" cycles {d['cycles']['median']}")

    print()
    print("Boot (generic counter = instructions since reset):")
    wb, nb = modes["warden"]["boot"], modes["native"]["boot"]
    if isinstance(nb.get("entry"), int):
        print(f"  without warden: client's first instruction at {nb['entry']:,}"
              " (firmware to BL33, plus the 2-instruction stub)")
    if isinstance(wb.get("entry"), int):
        print(f"  with warden:    client's first instruction at {wb['entry']:,}")
    if warden_boot(data) is not None:
        we, wh = wb["warden_entry"], wb["warden_host_entry"]
        print(f"  warden: first instruction at {we:,}, enters the host at {wh:,}:"
              f" {wh - we:,} instructions of warden boot")
    elif "warden_times" in wb:
        print("  warden has no WARDEN_BOOT_TIMES HVC: boot cost n/a")
    for name in ("warden", "native"):
        for p in modes[name]["problems"]:
            print(f"  PROBLEM ({name}): {p}")


def warden_boot(data):
    """Instructions from warden's first instruction to its entry into the host."""
    b = data.get("modes", {}).get("warden", {}).get("boot", {})
    e, h = b.get("warden_entry"), b.get("warden_host_entry")
    return h - e if isinstance(e, int) and isinstance(h, int) else None


def target_value(data, how):
    ops = {e["op"]: e for e in data["ops"]}
    kind = how[0]
    if kind == "boot":
        return warden_boot(data)
    if kind == "el2":
        return median((ops.get(how[1]) or {}).get("warden"), "el2")
    added = [(ops.get(op) or {}).get("added") for op in how[1:]]
    if any(a is None for a in added):
        return None
    if kind == "added":
        return added[0]
    if kind == "per_range":
        return round((added[0] - added[1]) / 15)
    if kind == "growth":
        return added[0] - added[1]
    return None


def check_targets(data):
    """Prints each target with its value; returns how many are not met."""
    print()
    print("Targets (issue 15):")
    rows, missed = [], 0
    for name, how, limit in TARGETS:
        v = target_value(data, how)
        ok = v is not None and v <= limit
        missed += not ok
        rows.append([name, f"{v:+,}" if v is not None and how[0] != "el2" and how[0] != "boot"
                     else (f"{v:,}" if v is not None else "n/a"),
                     f"<= {limit:,}", "met" if ok else "NOT MET"])
    print(table(["target", "now", "limit", ""], rows, right={1, 2}))
    return missed


def compare(data, baseline_path):
    """Prints changes against the baseline; returns the number of regressions."""
    print()
    if not os.path.exists(baseline_path):
        print(f"No baseline ({baseline_path}); `scripts/bench --save` writes one.")
        return 0
    try:
        with open(baseline_path) as f:
            base = json.load(f)
    except (OSError, ValueError) as e:
        print(f"Baseline {baseline_path} unreadable: {e}")
        return 0
    bmeta = base.get("meta", {})
    print(f"Against {baseline_path} (saved {bmeta.get('date', '?')}, warden {bmeta.get('warden', '?')};"
          f" a change counts above {REGRESSION_PERCENT:g}% or {REGRESSION_INSTRUCTIONS} instructions):")
    bops = {e["op"]: e for e in base.get("ops", [])}
    regressions, lines = 0, []
    for e in data["ops"]:
        b = bops.get(e["op"])
        if b is None:
            lines.append(f"  new        {e['op']}")
            continue
        for mode, view, label in COMPARED:
            old, new = b.get(mode), e.get(mode)
            mo, mn = median(old, view), median(new, view)
            if mo is None and mn is None:
                continue
            if mo is not None and mn is None:
                regressions += 1
                lines.append(f"  REGRESSION {e['op']}: {label}: was {mo:,}, now {status_text(new)}")
                continue
            if mo is None:
                lines.append(f"  changed    {e['op']}: {label}: was {status_text(old)}, now {mn:,}")
                continue
            delta = mn - mo
            pct = 100.0 * delta / mo if mo else (0.0 if delta == 0 else float("inf"))
            if abs(delta) > REGRESSION_INSTRUCTIONS or abs(pct) > REGRESSION_PERCENT:
                worse = delta > 0
                regressions += worse
                tag = "REGRESSION" if worse else "improved  "
                lines.append(f"  {tag} {e['op']}: {label}: {mo:,} -> {mn:,} ({delta:+,}, {pct:+.1f}%)")
    old_boot, new_boot = warden_boot(base), warden_boot(data)
    if old_boot is not None and new_boot is not None:
        delta = new_boot - old_boot
        pct = 100.0 * delta / old_boot if old_boot else 0.0
        if abs(delta) > REGRESSION_INSTRUCTIONS or abs(pct) > REGRESSION_PERCENT:
            regressions += delta > 0
            tag = "REGRESSION" if delta > 0 else "improved  "
            lines.append(f"  {tag} warden boot: {old_boot:,} -> {new_boot:,} ({delta:+,}, {pct:+.1f}%)")
    for op in bops:
        if op not in {e["op"] for e in data["ops"]}:
            lines.append(f"  gone       {op}")
    print("\n".join(lines) if lines else "  no change")
    print(f"  {regressions} regression(s)")
    return regressions


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--warden", required=True, help="console log of the run under warden")
    ap.add_argument("--native", required=True, help="console log of the run without warden")
    ap.add_argument("--json", required=True, help="where to write this run's results")
    ap.add_argument("--baseline", required=True, help="the baseline to compare against")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE recorded in the JSON")
    ap.add_argument("--save", action="store_true", help="write this run as the baseline")
    ap.add_argument("--check", action="store_true",
                    help="exit 3 on regressions, 4 on targets not met (regressions first)")
    args = ap.parse_args()

    meta = dict(m.split("=", 1) for m in args.meta if "=" in m)
    meta["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    warden, native = parse_log(args.warden), parse_log(args.native)
    data = build(warden, native, meta)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")

    print_tables(data)
    print_facts(data)
    failed = any(m["problems"] or m["errors"] for m in data["modes"].values())
    if failed:
        print()
        print("The run failed (PROBLEM above): no comparison with the baseline.")
        regressions = 0
    else:
        regressions = compare(data, args.baseline)
    missed = check_targets(data)
    print()
    print(f"Results: {args.json}")

    if args.save:
        if failed:
            print("Not saving a baseline from a run that failed.")
        else:
            with open(args.baseline, "w") as f:
                json.dump(data, f, indent=1)
                f.write("\n")
            print(f"Baseline saved: {args.baseline}")
    if failed:
        return 1
    if args.check and regressions:
        return 3
    if args.check and missed:
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
