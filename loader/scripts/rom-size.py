#!/usr/bin/env python3
"""Where isboot.efi's bytes go, from an lld-link map (/map): each public symbol's size is the
distance to the next one in its section, summed by the crate that defines the item (the first
crate of its v0-mangled path: a generic function instantiated for the image counts for the
crate that wrote it), or for other symbols the crate its object file came from.

    rom-size.py MAP [MAP_WITHOUT_HCA]

Read from a non-LTO build (build-efi.sh FEATURES_ONLY=measure): with LTO the crates are merged
into one object and the map cannot tell them apart. Code that is private to an object is
counted with the public symbol before it, which is in the same object.
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([0-9a-f]{4}):([0-9a-f]{8})\s+(\S+)\s+[0-9a-f]{16}\s+(.*)$")
SECTION = re.compile(r"^\s*([0-9a-f]{4}):([0-9a-f]{8})\s+([0-9a-f]{8})H\s+(\S+)\s+(CODE|DATA)")


def crate_of(obj):
    # "libloader-<hash>:loader-<hash>.loader.<hash>-cgu.0.rcgu.o" or "isboot-<hash>.isboot...."
    obj = obj.split(":")[-1]
    name = obj.split(".")[0]
    name = re.sub(r"-[0-9a-f]{16}$", "", name)
    return {"isboot": "isboot-efi (UEFI glue)"}.get(name, name)


V0_CRATE = re.compile(r"C(?:s[0-9A-Za-z]*_)?(\d+)_?")


def crate_of_symbol(sym):
    if not sym.startswith("_R"):
        return None
    m = V0_CRATE.search(sym)
    if not m:
        return None
    n = int(m.group(1))
    name = sym[m.end():m.end() + n]
    return {"isboot": "isboot-efi (UEFI glue)"}.get(name, name)


def read(path):
    sections = {}
    syms = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = SECTION.match(line)
        if m:
            sec = int(m.group(1), 16)
            end = int(m.group(2), 16) + int(m.group(3), 16)
            sections[sec] = max(sections.get(sec, 0), end)
            continue
        m = LINE.match(line)
        if m:
            crate = crate_of_symbol(m.group(3)) or crate_of(m.group(4))
            syms.append((int(m.group(1), 16), int(m.group(2), 16), crate))
    syms.sort()
    by = defaultdict(int)
    for i, (sec, addr, crate) in enumerate(syms):
        nxt = syms[i + 1] if i + 1 < len(syms) and syms[i + 1][0] == sec else None
        end = nxt[1] if nxt else sections.get(sec, addr)
        kind = "code" if sec == 1 else "data"
        by[(crate, kind)] += max(0, end - addr)
    return by


def table(by):
    crates = sorted({c for c, _ in by}, key=lambda c: -(by[(c, "code")] + by[(c, "data")]))
    total = sum(by.values())
    for c in crates:
        code, data = by[(c, "code")], by[(c, "data")]
        print(f"  {c:28} {code:8} code {data:7} data  {100 * (code + data) / total:5.1f}%")
    print(f"  {'total':28} {total:8}")
    return crates


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    a = read(sys.argv[1])
    print(f"where the bytes go ({sys.argv[1]}, non-LTO: larger than the LTO image):")
    table(a)
    if len(sys.argv) > 2:
        b = read(sys.argv[2])
        print(f"what the ConnectX driver and the IPoIB path add (against {sys.argv[2]}):")
        diff = defaultdict(int)
        for k in set(a) | set(b):
            diff[k[0]] += a.get(k, 0) - b.get(k, 0)
        for c, d in sorted(diff.items(), key=lambda x: -x[1]):
            if d:
                print(f"  {c:28} {d:+8}")
        print(f"  {'total':28} {sum(diff.values()):+8}")


if __name__ == "__main__":
    main()
