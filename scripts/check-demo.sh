#!/usr/bin/env bash
# Checks what `make demo` printed (its log in $1): each step's key line is there, and the output
# is for people (no NUL bytes, no Rust Debug dumps, no leaked secrets).
set -euo pipefail
log="$1"
fail=0
need() {
    if ! grep -qE -- "$1" "$log"; then
        echo "check-demo: missing: $2 (/$1/)" >&2
        fail=1
    fi
}
refuse() {
    if grep -nE -- "$1" "$log" >&2; then
        echo "check-demo: must not appear: $2 (/$1/)" >&2
        fail=1
    fi
}
need '^rom: port 1: .*stays DOWN: no physical link' "the ROM gives up port 1"
need '^rom: port 2: ACTIVE; joined the IPoIB broadcast group' "the ROM boots through port 2"
need '^rom: DHCP: 192\.0\.2\.[0-9]+/24 via 192\.0\.2\.1 .*root path iscsi:' "a DHCP lease over IB from Kea"
need '^rom: iSCSI: logged in to iqn\..* \(mutual CHAP\)$' "a mutual-CHAP login to tgtd"
need '^rom: LBA 0 reads "isboot demo disk: FreeBSD root, GPT, UFS2 on p2", boot signature 55aa$' "the boot blocks"
need '^capture: [0-9]+ packets of the boot.s fabric in target/demo-boot\.pcap' "the boot's capture"
need '^== Every packet of that boot is in target/demo-boot\.pcap: read it with tshark -r' "where the capture is and how to read it"
# The capture itself: next to the log, a pcap (nanosecond magic, little-endian) of link type 252
# (Wireshark's exported PDU) with more than the SA's first answer in it.
pcap="$(dirname "$log")/demo-boot.pcap"
if [ ! -f "$pcap" ]; then
    echo "check-demo: missing: the capture file $pcap" >&2
    fail=1
elif [ "$(od -An -tx1 -N24 "$pcap" | tr -d ' \n')" != "4d3cb2a1020004000000000000000000ffff0000fc000000" ]; then
    echo "check-demo: $pcap does not start with a pcap header of link type 252" >&2
    fail=1
elif [ "$(stat -c %s "$pcap")" -lt 4096 ]; then
    echo "check-demo: $pcap is too short to hold a boot ($(stat -c %s "$pcap") bytes)" >&2
    fail=1
fi
svg="$(dirname "$log")/demo-timeline.svg"
[ -f "$svg" ] && head -c 300 "$svg" | grep -q '<svg ' || { echo "check-demo: missing: the SVG timeline $svg" >&2; fail=1; }
# The real module's stages (its net.isboot.timing) in a lane of their own after the ROM's.
for stage in interface address login disk "hold released"; do
    grep -q "data-stage=\"isboot.ko: $stage\"" "$svg" 2>/dev/null || { echo "check-demo: missing: the module's stage \"$stage\" in $svg" >&2; fail=1; }
done
grep -q 'isboot.ko under kldrun: real time after the hand-off' "$svg" 2>/dev/null || { echo "check-demo: missing: the module lane's label in $svg" >&2; fail=1; }
need '^net\.isboot\.timing\.hold_released_ms: [0-9]+$' "the real module's stage times"
need '^isboot: .*-> iqn\.2026-11\.org\.example:boot at 192\.0\.2\.1:3260 LUN 1 \(mutual CHAP\)' "the module's load line"
need '^hw\.ibft\.target\.0\.chap_type: mutual$' "the sysctl tree, to its last target leaf"
need '^isboot: LUN 1 of iqn\.2026-11\.org\.example:boot at 192\.0\.2\.1:3260 is da0; releasing the root mount hold$' "the boot thread attaching the disk"
need '^mountroot: da0p2 ufs2 / = boot,dev,etc,sbin,tmp$' "root found on da0p2"
need '^net\.isboot\.session_state: logged in$' "the boot thread's state"
need '^== isboot\.ko itself: the real FreeBSD module, loaded by kldrun' "the real module's step"
need 'the module reaches the target over an$' "why the real module uses an Ethernet-style interface"
need '^\$ kldrun --phys 0x9e620=target/demo-ibft\.bin --mountroot --sysctl net\.isboot --sysctl hw\.ibft target/kmod/isboot\.ko$' "the kldrun command"
need '^Root mount waiting for: isboot$' "the real module's root mount hold"
need '^kldrun: leak check: clean' "the real module unloaded leaving nothing behind"
if [ "$(grep -cE '^mountroot: da0p2 ufs2 / = boot,dev,etc,sbin,tmp$' "$log")" -lt 2 ]; then
    echo "check-demo: missing: the real module's mountroot line (a second /^mountroot: da0p2 .../)" >&2
    fail=1
fi
if [ "$(grep -cE '^isboot: LUN 1 of iqn\.2026-11\.org\.example:boot at 192\.0\.2\.1:3260 is da0; releasing the root mount hold$' "$log")" -lt 2 ]; then
    echo "check-demo: missing: the real module attaching da0 (a second release line)" >&2
    fail=1
fi
need '^target0/chap-type=2$' "ibft dump of the ROM's table"
need 'mutual\.bin: valid iBFT' "a real iPXE table checked"
need '^fabric: [0-9]+ packets delivered' "the fabric step"
need '^ibft: target/demo-corrupt\.bin: target 0: NIC association: NIC 7 is not in the table$' "the damaged table's structure-and-field error"
need '^\(exit status 1\)$' "the damaged table's exit status"
need '^== Still to come on a real machine: ' "the closing lines"
need '^== real isboot\.ko did it too under kldrun' "the closing lines name the real module"
if ! tr -d '\000' <"$log" | cmp -s - "$log"; then
    echo "check-demo: must not appear: NUL bytes" >&2
    fail=1
fi
refuse 'Some\(|None\b|[A-Z][A-Za-z]+ \{ [a-z_]+: ' "Rust Debug output"
refuse 'n0de17-chap-secret|arr4y-mutual-secret' "a CHAP secret"
refuse 'MTU code' "an MTU as its IBA code"
if [ "$fail" != 0 ]; then
    echo "--- the demo's output:" >&2
    cat "$log" >&2
    exit 1
fi
echo "check-demo: make demo printed every step ($(wc -l <"$log") lines)"
