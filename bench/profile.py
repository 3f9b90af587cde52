#!/usr/bin/env python3
"""A flat instruction profile of warden from QEMU's TCG log (no TCG plugin needed).

QEMU logs every translated block once (`-d in_asm`: the block's guest instructions) and
every execution of a block (`-d exec,nochain`: one `Trace` line with its start PC). The
instructions executed in a block are its length, so each execution adds the block's length
to the function that holds its first instruction (a block never crosses a branch, and a call
ends a block). `-dfilter` keeps the log to warden's image.

Usage: profile.py --log qemu.log --elf warden [--from SYMBOL] [--until SYMBOL] [--top N]
  --from   count only after the first execution of a block in SYMBOL (e.g.
           warden_enter_host: the calls after boot)
  --until  stop at the first execution of a block in SYMBOL (e.g. warden_enter_host: the
           boot profile); the default is the whole log.
"""

import argparse
import bisect
import re
import subprocess
import sys

IN_RE = re.compile(r"^(?:0x)?([0-9a-f]{8,16}):\s+[0-9a-f]{8}\s")
TRACE_RE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def symbols(elf):
    out = subprocess.run(["llvm-nm", "-n", "--demangle", "--defined-only", elf],
                         check=True, capture_output=True, text=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16))
            names.append(shorten(parts[2]))
    return addrs, names


def shorten(name):
    # Drop the hash suffix and generic noise so one function is one line.
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name


def function_of(addrs, names, pc):
    i = bisect.bisect_right(addrs, pc) - 1
    return names[i] if i >= 0 else f"?{pc:#x}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--log", required=True)
    ap.add_argument("--elf", required=True)
    ap.add_argument("--from", dest="start", default=None)
    ap.add_argument("--until", default=None)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    addrs, names = symbols(args.elf)

    block_len = {}
    current, count = None, 0
    per_function, total, executions = {}, 0, 0
    stop_at = args.until
    counting = args.start is None
    with open(args.log, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                if current is not None:
                    block_len[current] = count
                current, count = None, 0
                continue
            m = IN_RE.match(line)
            if m:
                if current is None:
                    current = int(m.group(1), 16)
                count += 1
                continue
            m = TRACE_RE.match(line)
            if m:
                if current is not None:
                    block_len[current] = count
                    current, count = None, 0
                pc = int(m.group(1), 16)
                fn = function_of(addrs, names, pc)
                if stop_at and fn.startswith(stop_at):
                    break
                if not counting:
                    counting = fn.startswith(args.start)
                    continue
                n = block_len.get(pc, 1)
                per_function[fn] = per_function.get(fn, 0) + n
                total += n
                executions += 1
    print(f"{total:,} instructions in {executions:,} block executions"
          + (f", from {args.start}" if args.start else "")
          + (f", up to {stop_at}" if stop_at else ""))
    print(f"{'instructions':>12}  {'share':>6}  function")
    for fn, n in sorted(per_function.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{n:>12,}  {100.0 * n / max(total, 1):5.1f}%  {fn[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
