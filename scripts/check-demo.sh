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
need '^== No interface carries the table.s MAC, so the module opens the HCA with its own$' "why the real module takes its native path"
need '^\$ kldrun --phys 0x9e620=target/demo-ibft\.bin --hca 81:00\.0,port1=down,guid=2c90300001038,forward=3260,gateway=192\.0\.2\.1/24 --mountroot --sysctl net\.isboot --sysctl hw\.ibft target/kmod/isboot\.ko$' "the kldrun command with the ROM's HCA"
need '^isboot: pci0:129:0:0: HCA up: firmware [0-9.]+, 2 port\(s\)$' "the module's driver bringing the ROM's HCA up"
need '^isboot: pci0:129:0:0: port 1: DOWN, LID 0x0' "port 1 still without a cable"
need '^isboot: pci0:129:0:0: the iBFT NIC \(MAC 00:02:c9:00:10:3a\) is port 2; trying it first$' "the NIC the ROM wrote is port 2"
need '^isboot: IPoIB: port 2 up: LID 0x[0-9a-f]+, P_Key 0xffff' "IPoIB up on port 2"
need '^isbib0: link state changed to UP$' "the module's IPoIB interface"
need '^isboot: boot interface isbib0 \(MAC 00:02:c9:00:10:3a' "isbib0 as the boot interface"
need '^isboot: logged in to iqn\.2026-11\.org\.example:boot \(mutual CHAP; [0-9]+ ms\)$' "the module's login over IPoIB"
need '^da0 at isboot0 bus 0 scbus0 target 0 lun 0$' "da0 attached by CAM"
need '^net\.isboot\.nic: isbib0$' "the boot thread's NIC is isbib0"
need '^isboot: IPoIB: port 2: left the broadcast group, device closed$' "the HCA closed on unload"
refuse '^isb0|Ethernet-style interface \(a veth' "the real module on a veth"
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
need '^== real isboot\.ko did it too under kldrun through the same HCA' "the closing lines name the real module and its HCA"
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
