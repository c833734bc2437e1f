#!/usr/bin/env python3
"""Where the time goes: a `perf record -g` profile split by class of code (docs/bench-profile.md).

usage: perf-attr.py PERF.DATA [MODULE.ko]

Classes: `module` (samples inside the kld's .text as kldrun maps it: the image at 0x40000000,
.text first, which is how kmod/harness/src/linker.rs lays out a kld with one code section;
symbols from the .ko's own symbol table), `kldrun` (kldrun's Rust: the emulated kernel),
`libc`, `kernel` (Linux), `ours` (iscsi-initiator), `libiscsi` (iscsi-perf). Prints the share
per class, the top self symbols, the kernel samples by the system call they are in (from the
call chain), and by the first user-space caller."""
import bisect
import collections
import re
import subprocess
import sys

if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
DATA = sys.argv[1]
KO = sys.argv[2] if len(sys.argv) > 2 else None
BASE = 0x4000_0000  # kmod/harness/src/linker.rs IMAGE_BASE; the first image mapped gets it

syms = []
if KO:
    out = subprocess.run(["readelf", "-sW", KO], capture_output=True, text=True, check=True).stdout
    text = None
    for line in subprocess.run(["readelf", "-SW", KO], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+\.text\s", line)
        if m:
            text = m.group(1)
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6] == text:
            syms.append((BASE + int(f[1], 16), int(f[2]), f[7]))
    syms.sort()
starts = [s[0] for s in syms]


def modsym(ip):
    i = bisect.bisect_right(starts, ip) - 1
    if i >= 0 and ip < syms[i][0] + max(syms[i][1], 1):
        return syms[i][2]
    return None


def klass(ip, sym, dso):
    if KO and modsym(ip):
        return "module", "isboot.ko:" + modsym(ip)
    if "kernel" in dso:
        return "kernel", "[k] " + sym
    if "kldrun" in dso:
        return "kldrun", sym
    if "libc" in dso or "ld-linux" in dso:
        return "libc", sym
    if "iscsi-perf" in dso or "libiscsi" in dso:
        return "libiscsi", sym
    if "iscsi-initiator" in dso:
        return "ours", sym
    return "other", f"{sym} ({dso})"


txt = subprocess.run(["perf", "script", "-i", DATA, "-F", "comm,tid,ip,sym,dso"],
                     capture_output=True, text=True, check=True).stdout
samples, cur = [], None
for line in txt.splitlines():
    if not line.strip():
        continue
    if not line.startswith((" ", "\t")):
        if cur is not None:
            samples.append(cur)
        cur = []
        continue
    m = re.match(r"\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
    if m and cur is not None:
        cur.append((int(m.group(1), 16), m.group(2), m.group(3)))
if cur is not None:
    samples.append(cur)
samples = [s for s in samples if s]
n = len(samples) or 1
cls, top, ksys, kcaller = (collections.Counter() for _ in range(4))
for frames in samples:
    c, name = klass(*frames[0])
    cls[c] += 1
    top[name] += 1
    if c != "kernel":
        continue
    sc = "other (irq, softirq)"
    for _, fsym, _ in frames:
        m = re.match(r"__(?:x64|ia32)_sys_(\w+)", fsym)
        if m:
            sc = m.group(1)
            break
        if fsym.startswith(("exit_to_user_mode", "irqentry_exit")):
            sc = "preempted on return to user"
            break
    ksys[sc] += 1
    who = "? (no user frame)"
    for f in frames:
        if "kernel" in f[2]:
            continue
        c2, n2 = klass(*f)
        if c2 == "libc":
            continue
        who = f"{c2}: {n2[:80]}"
        break
    kcaller[who] += 1

print(f"{DATA}: {len(samples)} samples\n\n| class | share |\n|---|---:|")
for c, k in cls.most_common():
    print(f"| {c} | {100 * k / n:.1f}% |")
print("\n| top symbols (self) | share |\n|---|---:|")
for name, k in top.most_common(10):
    print(f"| {name[:100]} | {100 * k / n:.1f}% |")
print("\nkernel samples by system call:")
for name, k in ksys.most_common(8):
    print(f"  {100 * k / n:5.1f}%  {name}")
print("\nkernel samples by first user-space caller:")
for name, k in kcaller.most_common(8):
    print(f"  {100 * k / n:5.1f}%  {name}")
