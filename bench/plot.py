#!/usr/bin/env python3
"""Draws a benchmark result (target/bench/latest.json) as one SVG for the README.

Left: instructions warden adds to each single call (all ELs with warden minus without;
the null HVC, which has no native counterpart, as warden's own EL2 count). Right: the cost
of MEM_SHARE+RECLAIM and MEM_LEND+RECLAIM against the number of single-page ranges, with
and without warden, on log-log axes. Standard library only.

Usage: plot.py --json latest.json --svg out.svg
"""

import argparse
import json
import math
import sys

CALLS = (
    ("hvc_warden_version", "null HVC (EL2)"),
    ("smccc_version", "SMCCC_VERSION"),
    ("ffa_version", "FFA_VERSION"),
    ("ffa_id_get", "FFA_ID_GET"),
    ("ffa_features_rxtx_map", "FFA_FEATURES"),
    ("direct_req_optee_api_version", "DIRECT_REQ"),
    ("partition_info_get_rx_release", "PARTITION_INFO_GET+RX_RELEASE"),
    ("mem_share_reclaim_1", "MEM_SHARE+RECLAIM 1 page"),
)
SERIES = (
    ("mem_share_reclaim_", "warden", "share, with warden", "#1f77b4"),
    ("mem_share_reclaim_", "native", "share, without warden", "#9ecae1"),
    ("mem_lend_reclaim_", "warden", "lend, with warden", "#d62728"),
    ("mem_lend_reclaim_", "native", "lend, without warden", "#fc9272"),
)


def median(result, view="all"):
    if result and result.get("status") == "ok" and isinstance(result.get(view), dict):
        return result[view]["median"]
    return None


def text(x, y, s, anchor="start", size=11, extra=""):
    s = s.replace("&", "&amp;").replace("<", "&lt;")
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
            f' font-family="sans-serif" {extra}>{s}</text>')


def bars(ops, x0, y0, w, h):
    out = [text(x0 + w / 2, y0 - 10, "instructions warden adds per call", "middle", 13)]
    values = []
    for op, label in CALLS:
        e = ops.get(op, {})
        v = e.get("added")
        if v is None and op == "hvc_warden_version":
            v = median(e.get("warden"), "el2")
        values.append((label, v))
    span = max([abs(v) for _, v in values if v is not None] + [1])
    zero = x0 + 190 + (w - 190) * 0.35
    scale = (w - 190) * 0.6 / span
    row = h / len(values)
    out.append(f'<line x1="{zero:.1f}" y1="{y0}" x2="{zero:.1f}" y2="{y0 + h}" stroke="#444"/>')
    for i, (label, v) in enumerate(values):
        y = y0 + i * row
        out.append(text(x0 + 185, y + row * 0.62, label, "end"))
        if v is None:
            out.append(text(zero + 4, y + row * 0.62, "n/a"))
            continue
        bx, bw = (zero, v * scale) if v >= 0 else (zero + v * scale, -v * scale)
        color = "#d62728" if v > 0 else "#2ca02c"
        out.append(f'<rect x="{bx:.1f}" y="{y + row * 0.15:.1f}" width="{max(bw, 1):.1f}"'
                   f' height="{row * 0.7:.1f}" fill="{color}"/>')
        tx = bx + bw + 4 if v >= 0 else bx - 4
        out.append(text(tx, y + row * 0.62, f"{v:+,}", "start" if v >= 0 else "end", 10))
    return out


def lines(ops, x0, y0, w, h):
    out = [text(x0 + w / 2, y0 - 10, "MEM_SHARE/LEND + RECLAIM, single-page ranges (log-log)",
                "middle", 13)]
    points = []
    for prefix, mode, label, color in SERIES:
        pts = []
        for op, e in ops.items():
            rest = op[len(prefix):] if op.startswith(prefix) else ""
            if rest.isdigit():
                v = median(e.get(mode))
                if v:
                    pts.append((int(rest), v))
        pts.sort()
        points.append((label, color, pts))
    xs = [p[0] for _, _, pts in points for p in pts] or [1, 10]
    ys = [p[1] for _, _, pts in points for p in pts] or [1, 10]
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs)) + 0.1
    ly0, ly1 = math.log10(min(ys)) - 0.1, math.log10(max(ys)) + 0.1
    px = lambda v: x0 + (math.log10(v) - lx0) / (lx1 - lx0) * w
    py = lambda v: y0 + h - (math.log10(v) - ly0) / (ly1 - ly0) * h
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
    for d in range(math.floor(ly0) + 1, math.floor(ly1) + 1):
        out.append(f'<line x1="{x0}" y1="{py(10**d):.1f}" x2="{x0 + w}" y2="{py(10**d):.1f}"'
                   ' stroke="#ddd"/>')
        out.append(text(x0 - 4, py(10**d) + 4, f"{10**d:,}", "end", 10))
    for n in sorted(set(xs)):
        out.append(text(px(n), y0 + h + 14, f"{n:,}", "middle", 10))
    out.append(text(x0 + w / 2, y0 + h + 30, "ranges", "middle"))
    for i, (label, color, pts) in enumerate(points):
        if len(pts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<rect x="{x0 + 10}" y="{y0 + 10 + i * 16}" width="10" height="10" fill="{color}"/>')
        out.append(text(x0 + 26, y0 + 19 + i * 16, label, size=10))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", required=True)
    ap.add_argument("--svg", required=True)
    args = ap.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    ops = {e["op"]: e for e in data["ops"]}
    width, height = 1000, 360
    body = bars(ops, 10, 40, 460, 280) + lines(ops, 560, 40, 400, 260)
    meta = data.get("meta", {})
    body.append(text(10, height - 8, f"warden {meta.get('warden', '?')}, {meta.get('qemu', '')},"
                     f" instructions under -icount", size=10, extra='fill="#666"'))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
           f' viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n'
           + "\n".join(body) + "\n</svg>\n")
    with open(args.svg, "w") as f:
        f.write(svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
