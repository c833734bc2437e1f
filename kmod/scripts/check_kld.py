#!/usr/bin/env python3
"""Structural checks of isboot.ko that need no FreeBSD machine (kmod/scripts/check-kld.sh).

  1. ELF64 relocatable (ET_REL), x86-64, OS/ABI FreeBSD, exactly one symbol table;
  2. relocation types against allocated sections only R_X86_64_64/PC32/PLT32/32S, no TLS;
  3. no SSE/AVX/x87/MMX instruction or register in executable sections (objdump scan);
  4. every undefined symbol is a kernel function or variable declared by the FreeBSD headers
     (compiled: a C file takes the address of each against those headers), or the bounds of a
     linker set the module itself carries;
  5. the module metadata is there: the linker sets DECLARE_MODULE/SYSCTL_* emit and the Rust
     entry point the shim calls.
(The shim's _Static_asserts are checked by check-kld.sh, by compiling the shim.)

  6. M_ISBOOT's ks_version is the target kernel's M_VERSION (malloc_init panics otherwise);
     the module metadata decodes to: module "isboot" with handler isboot_modevent, version 1,
     depending on kernel [FREEBSD_VERSION, end of that major], cam, netlink and if_infiniband
     1, MOD_LOAD at SI_SUB_ROOT_CONF-1.

Usage: check_kld.py [--freebsd-version=N] [--bindings=ffi.rs] KO DECLCHECK_CMD...   (DECLCHECK_CMD: compiler command reading C on stdin)
Prints one line per check; exit status 1 if any fails.
"""
import re
import struct
import subprocess
import sys

ET_REL = 1
EM_X86_64 = 62
ELFOSABI_FREEBSD = 9
SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_NOBITS = 2, 4, 9, 8
SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x2, 0x4, 0x400
SHN_UNDEF = 0

R_X86_64 = {
    0: "NONE", 1: "64", 2: "PC32", 3: "GOT32", 4: "PLT32", 5: "COPY", 6: "GLOB_DAT",
    7: "JUMP_SLOT", 8: "RELATIVE", 9: "GOTPCREL", 10: "32", 11: "32S", 12: "16", 13: "PC16",
    14: "8", 15: "PC8", 16: "DTPMOD64", 17: "DTPOFF64", 18: "TPOFF64", 19: "TLSGD", 20: "TLSLD",
    21: "DTPOFF32", 22: "GOTTPOFF", 23: "TPOFF32", 24: "PC64", 25: "GOTOFF64", 26: "GOTPC32",
    41: "GOTPCRELX", 42: "REX_GOTPCRELX",
}
ALLOWED_RELOCS = {"64", "PC32", "PLT32", "32S"}

# The module's own linker sets: the kernel linker resolves __start_set_X/__stop_set_X for them.
REQUIRED_SETS = ["set_sysinit_set", "set_sysuninit_set", "set_sysctl_set", "set_modmetadata_set"]
ENTRY = "isboot_modevent"
MAX_FRAME = 4096


class Elf:
    def __init__(self, data):
        self.data = data
        if data[:4] != b"\x7fELF":
            raise ValueError("not an ELF file")
        self.cls, self.endian, self.osabi = data[4], data[5], data[7]
        if self.cls != 2 or self.endian != 1:
            raise ValueError("not ELF64 little-endian")
        (self.type, self.machine, _ver, _entry, _phoff, shoff, _flags, _ehsize, _phentsize,
         _phnum, shentsize, shnum, shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        self.sections = []
        for i in range(shnum):
            (name, typ, flags, addr, off, size, link, info, align, entsize) = struct.unpack_from(
                "<IIQQQQIIQQ", data, shoff + i * shentsize)
            self.sections.append(dict(name_off=name, type=typ, flags=flags, offset=off,
                                      size=size, link=link, info=info, entsize=entsize))
        strtab = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self.cstr(strtab["offset"] + s["name_off"])

    def cstr(self, off):
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode("ascii", "replace")

    def symbols(self):
        out = []
        for s in self.sections:
            if s["type"] != SHT_SYMTAB:
                continue
            strtab = self.sections[s["link"]]
            for i in range(s["size"] // 24):
                name, info, other, shndx, value, size = struct.unpack_from(
                    "<IBBHQQ", self.data, s["offset"] + i * 24)
                out.append(dict(name=self.cstr(strtab["offset"] + name), bind=info >> 4,
                                type=info & 0xf, shndx=shndx, value=value))
        return out

    def reloc_map(self):
        """{(target section index, offset): (symbol, addend)} for RELA sections."""
        syms = self.symbols()
        out = {}
        for s in self.sections:
            if s["type"] != SHT_RELA:
                continue
            for i in range(s["size"] // 24):
                off, info, addend = struct.unpack_from("<QQq", self.data, s["offset"] + i * 24)
                out[(s["info"], off)] = (syms[info >> 32], addend)
        return out

    def section_index(self, name):
        return next(i for i, s in enumerate(self.sections) if s["name"] == name)

    def pointer(self, relocs, sec, off):
        """What the 8-byte pointer at (section index, offset) points to after relocation:
        (section index, offset), or ("UND", symbol name)."""
        sym, addend = relocs[(sec, off)]
        if sym["shndx"] == SHN_UNDEF:
            return ("UND", sym["name"])
        return (sym["shndx"], sym["value"] + addend)

    def read(self, sec, off, n):
        s = self.sections[sec]
        if s["type"] == SHT_NOBITS:
            return bytes(n)
        return self.data[s["offset"] + off:s["offset"] + off + n]

    def string_at(self, sec, off):
        return self.cstr(self.sections[sec]["offset"] + off)

    def symbol_at(self, target):
        """Name of the function/object symbol at a resolved (section, offset) target."""
        if target[0] == "UND":
            return target[1]
        for sym in self.symbols():
            if sym["shndx"] == target[0] and sym["value"] == target[1] and sym["type"] in (1, 2):
                return sym["name"]
        return f"{self.sections[target[0]]['name']}+{target[1]:#x}"

    def relocations(self):
        """(target section, type name) for every relocation."""
        for s in self.sections:
            if s["type"] not in (SHT_RELA, SHT_REL):
                continue
            target = self.sections[s["info"]]
            entsize = 24 if s["type"] == SHT_RELA else 16
            for i in range(s["size"] // entsize):
                _off, info = struct.unpack_from("<QQ", self.data, s["offset"] + i * entsize)
                t = info & 0xffffffff
                yield target, R_X86_64.get(t, str(t))


def main():
    args = sys.argv[1:]
    bindings = None
    while args and args[0].startswith("--"):
        opt, _, val = args.pop(0).partition("=")
        if opt == "--freebsd-version":
            EXPECT["freebsd_version"] = val
        elif opt == "--bindings":
            bindings = val
    ko, declcheck = args[0], args[1:]
    elf = Elf(open(ko, "rb").read())
    failed = []

    def report(ok, what, detail=""):
        print(("ok    " if ok else "FAIL  ") + what + (": " + detail if detail else ""))
        if not ok:
            failed.append(what)

    # 1. ELF header
    symtabs = sum(1 for s in elf.sections if s["type"] == SHT_SYMTAB)
    report(elf.type == ET_REL and elf.machine == EM_X86_64 and elf.osabi == ELFOSABI_FREEBSD
           and symtabs == 1, "ELF64 REL x86-64, OS/ABI FreeBSD, one symbol table",
           f"type {elf.type}, machine {elf.machine}, OS/ABI {elf.osabi}, {symtabs} symtab(s)")

    # 2. relocations in allocated sections; no TLS sections
    kinds = {}
    for target, kind in elf.relocations():
        if target["flags"] & SHF_ALLOC:
            kinds[kind] = kinds.get(kind, 0) + 1
    bad = sorted(k for k in kinds if k not in ALLOWED_RELOCS)
    summary = ", ".join(f"R_X86_64_{k} x{n}" for k, n in sorted(kinds.items()))
    report(not bad, "relocations in allocated sections only R_X86_64_64/PC32/PLT32/32S",
           summary if not bad else "forbidden: " + ", ".join("R_X86_64_" + k for k in bad))
    tls = [s["name"] for s in elf.sections if s["flags"] & SHF_TLS]
    report(not tls, "no thread-local sections", ", ".join(tls))

    # 3. FPU/SIMD: any %xmm/%ymm/%zmm/%mm/%st/%k register, x87 (f*) or AVX (v*) mnemonic, or an
    #    instruction touching FPU/SIMD state.
    exec_secs = [s["name"] for s in elf.sections
                 if s["flags"] & SHF_EXECINSTR and s["flags"] & SHF_ALLOC and s["size"]]
    vmx = {"vmcall", "vmlaunch", "vmresume", "vmxoff", "vmxon", "vmptrld", "vmptrst", "vmread",
           "vmwrite", "vmclear", "vmfunc", "verr", "verw"}
    state = {"ldmxcsr", "stmxcsr", "fxsave", "fxsave64", "fxrstor", "fxrstor64", "xsave",
             "xsave64", "xsaveopt", "xsavec", "xsaves", "xrstor", "xrstor64", "xrstors", "emms",
             "femms", "fninit", "fwait", "wait"}
    reg = re.compile(r"%(x|y|z)mm\d|%mm\d|%st(\(\d\))?\b|%k[0-7]\b")
    args = ["objdump", "-d", "--no-show-raw-insn", "-M", "att"]
    for s in exec_secs:
        args += ["-j", s]
    dis = subprocess.run(args + [ko], capture_output=True, text=True, check=True).stdout
    offenders, ninsn = [], 0
    for line in dis.splitlines():
        m = re.match(r"\s*[0-9a-f]+:\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        ninsn += 1
        mnem, ops = m.group(1), m.group(2)
        while mnem in ("lock", "rep", "repz", "repnz", "repe", "repne", "data16", "cs", "ds",
                       "notrack", "bnd") and ops:
            mnem, _, ops = ops.partition(" ")
        if (reg.search(ops) or mnem in state or mnem.startswith("f")
                or (mnem.startswith("v") and mnem not in vmx)):
            offenders.append(line.strip())
    report(not offenders and ninsn > 0, "no SSE/AVX/x87/MMX instructions",
           f"{ninsn} instructions scanned in {', '.join(exec_secs)}" if not offenders
           else "; ".join(offenders[:5]))

    # 3b. stack frames: the kernel stack is 16 KiB (KSTACK_PAGES=4) for the whole call chain.
    #     A frame above a page is allocated a page at a time with inline stack probes
    #     (sub $0x1000,%rsp; movq $0,(%rsp); ...), so a function's frame is the sum of its
    #     subtractions from %rsp, not the largest one.
    sizes, fn = {}, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            fn = m.group(1)
            continue
        m = re.search(r"\bsub\s+\$0x([0-9a-f]+),%rsp", line)
        if m:
            sizes[fn] = sizes.get(fn, 0) + int(m.group(1), 16)
    frames = [(n, f) for f, n in sizes.items()]
    biggest = max(frames, default=(0, "-"))
    report(biggest[0] <= MAX_FRAME, f"no stack frame above {MAX_FRAME} bytes",
           f"largest {biggest[0]} bytes in {biggest[1][:80]}")

    # 4. undefined symbols
    syms = elf.symbols()
    undef = sorted({s["name"] for s in syms if s["shndx"] == SHN_UNDEF and s["name"]})
    sections = {s["name"] for s in elf.sections}
    set_bounds = [u for u in undef if re.match(r"__(start|stop)_(set_\w+)$", u)
                  and re.match(r"__(start|stop)_(set_\w+)$", u).group(2) in sections]
    to_check = [u for u in undef if u not in set_bounds]
    src = "".join(f'#include <{h}>\n' for h in HEADERS) + EXTRA_DECLS
    src += "void *isboot_declcheck[] = {\n" + "".join(f"\t(void *)&{u},\n" for u in to_check)
    src += "};\n"
    r = subprocess.run(declcheck, input=src, capture_output=True, text=True)
    if r.returncode == 0:
        report(True, "every undefined symbol is declared by the FreeBSD headers",
               f"{len(to_check)} kernel symbols: {' '.join(to_check)}"
               + (f"; {len(set_bounds)} bounds of the module's own linker sets" if set_bounds
                  else ""))
    else:
        undeclared = sorted(set(re.findall(r"use of undeclared identifier '(\w+)'", r.stderr)))
        report(False, "every undefined symbol is declared by the FreeBSD headers",
               "undeclared: " + (" ".join(undeclared) or r.stderr.strip()[:500]))

    # 4b. every KPI the Rust bindings declare (linked into this module or not yet)
    if bindings:
        # the KPIs (and those the C shim calls, `pub mod shim_kpis`), not the shim's own
        # symbols (`pub mod shim {`)
        text = open(bindings).read().split("pub mod shim {", 1)[0]
        kpis = sorted(set(re.findall(r"pub (?:fn|static(?: mut)?) (\w+)\s*[(:]", text)))
        src = "".join(f'#include <{h}>\n' for h in HEADERS) + EXTRA_DECLS
        src += "void *isboot_kpicheck[] = {\n" + "".join(f"\t(void *)&{k},\n" for k in kpis)
        src += "};\n"
        r = subprocess.run(declcheck, input=src, capture_output=True, text=True)
        undeclared = sorted(set(re.findall(r"undeclared identifier '(\w+)'", r.stderr)))
        report(r.returncode == 0 and len(kpis) > 0,
               "every KPI declared in kernel-bindings/src/ffi.rs is in the FreeBSD headers",
               f"{len(kpis)}: {' '.join(kpis)}" if r.returncode == 0
               else "undeclared: " + (" ".join(undeclared) or r.stderr.strip()[:500]))

    # 5. module metadata and entry point
    missing = [s for s in REQUIRED_SETS if s not in sections]
    entry = any(s["name"] == ENTRY and s["shndx"] != SHN_UNDEF for s in syms)
    report(not missing and entry, "module linker sets and Rust entry point present",
           ("missing " + " ".join(missing) if missing else " ".join(REQUIRED_SETS))
           + ("" if entry else f"; {ENTRY} not defined"))

    # 6. what DECLARE_MODULE/MODULE_VERSION/SYSINIT put in the linker sets, decoded through
    #    the relocations (this also proves the struct layouts of the headers used: struct
    #    sysinit has its `next` link since FreeBSD 14.0, so `func` is at offset 16).
    try:
        relocs = elf.reloc_map()
        meta = decode_metadata(elf, relocs)
        inits = decode_sysinits(elf, relocs)
    except (KeyError, StopIteration, struct.error) as e:
        report(False, "module metadata decodes", f"{type(e).__name__}: {e}")
    else:
        want_ver = int(EXPECT["freebsd_version"])
        want_max = (want_ver + 99999) // 100000 * 100000 - 1
        mtype = next(x for x in elf.symbols() if x["name"] == "M_ISBOOT" and x["shndx"])
        ks_version = struct.unpack("<Q", elf.read(mtype["shndx"], mtype["value"] + 8, 8))[0]
        want_mver = M_VERSION_14 if want_ver < 1500000 else M_VERSION_15
        report(ks_version == want_mver,
               "malloc type M_ISBOOT carries the target kernel's M_VERSION",
               f"ks_version {ks_version} (FreeBSD {want_ver // 100000} wants {want_mver})")
        ok = (("module", "isboot", "isboot_modevent") in meta
              and ("version", "isboot", 1) in meta
              and ("depend", "kernel", want_ver, want_ver, want_max) in meta
              # the boot thread: the CAM SIM, and netlink(4) for interfaces and routes
              and ("depend", "cam", 1, 1, 1) in meta
              and ("depend", "netlink", 1, 1, 1) in meta
              # the IPoIB interface: the InfiniBand link layer (if_infiniband)
              and ("depend", "if_infiniband", 1, 1, 1) in meta
              and (SI_SUB_ROOT_CONF - 1, SI_ORDER_ANY, "module_register_init") in inits)
        report(ok, "module metadata: isboot v1, handler isboot_modevent, "
               f"kernel {want_ver}..{want_max}, cam, netlink and if_infiniband 1, "
               "MOD_LOAD at SI_SUB_ROOT_CONF-1",
               "; ".join(str(m) for m in meta) + "; SYSINITs "
               + ", ".join(f"({a:#x},{b:#x}) {f}" for a, b, f in inits))

    return 1 if failed else 0


MDT_DEPEND, MDT_MODULE, MDT_VERSION = 1, 2, 3
# sys/malloc.h M_VERSION: malloc_init() panics on a type with another value.
M_VERSION_14, M_VERSION_15 = 2020110501, 2024073001
SI_SUB_ROOT_CONF, SI_ORDER_ANY = 0xB000000, 0xFFFFFFF
EXPECT = {"freebsd_version": "1400097"}


def decode_metadata(elf, relocs):
    """The struct mod_metadata entries of set_modmetadata_set, as tuples."""
    setidx = elf.section_index("set_modmetadata_set")
    out = []
    for i in range(elf.sections[setidx]["size"] // 8):
        md = elf.pointer(relocs, setidx, i * 8)
        version, typ = struct.unpack("<ii", elf.read(md[0], md[1], 8))
        data = elf.pointer(relocs, md[0], md[1] + 8)
        cval = elf.pointer(relocs, md[0], md[1] + 16)
        name = elf.string_at(*cval)
        if typ == MDT_DEPEND:
            out.append(("depend", name) + struct.unpack("<iii", elf.read(data[0], data[1], 12)))
        elif typ == MDT_VERSION:
            out.append(("version", name, struct.unpack("<i", elf.read(data[0], data[1], 4))[0]))
        elif typ == MDT_MODULE:
            # moduledata_t { const char *name; modeventhand_t evhand; void *priv; }
            mname = elf.string_at(*elf.pointer(relocs, data[0], data[1]))
            handler = elf.symbol_at(elf.pointer(relocs, data[0], data[1] + 8))
            out.append(("module", mname, handler) if mname == name else ("module?", name, mname))
        else:
            out.append(("type", typ, name))
    return out


def decode_sysinits(elf, relocs):
    """(subsystem, order, function) of each struct sysinit in set_sysinit_set
    (14+ layout: subsystem, order, next, func, udata)."""
    setidx = elf.section_index("set_sysinit_set")
    out = []
    for i in range(elf.sections[setidx]["size"] // 8):
        si = elf.pointer(relocs, setidx, i * 8)
        sub, order = struct.unpack("<II", elf.read(si[0], si[1], 8))
        func = elf.symbol_at(elf.pointer(relocs, si[0], si[1] + 16))
        out.append((sub, order, func))
    return out


# Headers searched for the declarations of the kernel symbols the module uses.
HEADERS = [
    "sys/param.h", "sys/systm.h", "sys/kernel.h", "sys/module.h", "sys/malloc.h", "sys/lock.h",
    "sys/mutex.h", "sys/sx.h", "sys/sysctl.h", "sys/linker.h", "sys/pcpu.h", "sys/proc.h",
    "sys/kthread.h", "sys/time.h", "sys/socket.h", "sys/socketvar.h", "sys/sockopt.h",
    "vm/vm.h", "vm/pmap.h", "machine/pmap.h",
    # the boot thread (kmod/shim/isboot_boot.c)
    "net/if.h", "net/if_var.h", "net/route.h", "netinet/in.h", "geom/geom.h",
    # the IPoIB interface (kmod/src/freebsd_ifnet.rs)
    "sys/mbuf.h", "net/if_types.h", "net/infiniband.h", "netinet/if_ether.h",
    "cam/cam.h", "cam/cam_ccb.h",
    "cam/cam_sim.h", "cam/cam_xpt.h", "cam/cam_xpt_sim.h", "cam/cam_periph.h",
    # the HCA (kmod/src/freebsd_hca.rs, kmod/shim/isboot_pci.c)
    "sys/bus.h", "sys/kobj.h", "sys/rman.h", "machine/bus.h", "sys/bus_dma.h",
]

# Kernel symbols whose declarations the installed headers lack: FreeBSD 14's
# sys/dev/pci/pcivar.h is not installed, and pci_if.h is generated by makeobjops.awk from
# sys/dev/pci/pci_if.m in a kernel build. Declared here as those headers declare them.
EXTRA_DECLS = """
device_t pci_find_dbsf(uint32_t, uint8_t, uint8_t, uint8_t);
extern struct kobjop_desc pci_read_config_desc;
extern struct kobjop_desc pci_write_config_desc;
extern struct kobjop_desc pci_enable_busmaster_desc;
"""

if __name__ == "__main__":
    sys.exit(main())
