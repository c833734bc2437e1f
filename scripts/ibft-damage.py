#!/usr/bin/env python3
"""Copy an iBFT, change one byte, and fix the checksum again, so that the table's own
validation (not its checksum) has to find the damage.

    ibft-damage.py IN OUT OFFSET VALUE
"""
import sys


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dst, offset, value = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4], 0)
    table = bytearray(open(src, "rb").read())
    length = int.from_bytes(table[4:8], "little")
    if not 10 <= offset < length <= len(table) or not 0 <= value <= 255:
        print(f"ibft-damage: offset {offset} or value {value} outside the {length}-byte table", file=sys.stderr)
        return 2
    table[offset] = value
    # ACPI: all bytes of the table, the checksum at offset 9 included, sum to zero (mod 256).
    table[9] = 0
    table[9] = -sum(table[:length]) & 0xFF
    open(dst, "wb").write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
