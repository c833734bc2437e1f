#!/usr/bin/env python3
"""make bench: our iSCSI initiator against libiscsi's iscsi-perf, side by side.

Starts a fresh tgtd on loopback with a LUN backed by a file in /dev/shm (so it is in page
cache), then runs, interleaved (ours, theirs, ours, theirs, ...), the same workloads against the
same LUN with both initiators, measures each process's CPU (user + system, from wait4's rusage,
the same way for both), and prints a table with both figures and the ratios ours/theirs for
IOPS, MiB/s and CPU per I/O, ending with one summary line.

The ko-* rows are the real isboot.ko under kldrun (`--workload bench`) against libiscsi the same
way, on a tgtd of their own: two network namespaces joined by a veth, as kmod/harness/tests/boot.rs
sets them up. kldrun's namespace holds isb0 (the nochap iBFT fixture's MAC, 10.0.2.15/24, the
address the module adds itself); the target's holds tgt0 (10.0.2.2/24) and tgtd with the
fixture's target name on 10.0.2.2:3260, LUN 1 a file in /dev/shm. kldrun (which boots the module
from the preloaded table) and iscsi-perf both run in kldrun's namespace (`ip netns exec`), so
both cross the same veth to the same LUN, and both CPU figures are the whole process's (for
kldrun: the module, the emulated kernel, the module's load, login, logout and the leak check).
kldrun's own figures for the workload alone follow the table (CPU per I/O, the module's
malloc(9) calls per I/O, the high-water of the bytes it held).

Where the time goes (profiles of both initiators and of kldrun, split into the module, the
emulation and Linux with scripts/perf-attr.py): docs/bench-profile.md.

Environment: BENCH_SECONDS (per run, default 10), BENCH_ROUNDS (default 2), BENCH_LUN_MIB
(default 1024), ISCSI_INITIATOR (our binary; default target/release/iscsi-initiator),
BENCH_WORKLOADS (comma-separated names from the table below; default all), BENCH_MODULE
(0: no ko-* rows), KLDRUN and ISBOOT_KO (default target/release/kldrun, target/kmod/isboot.ko).
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
LUN_MIB = int(os.environ.get("BENCH_LUN_MIB", "1024"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.environ.get("ISCSI_INITIATOR", os.path.join(REPO, "target/release/iscsi-initiator"))
IQN = "iqn.2026-11.org.example:bench"
BLOCK = 512  # tgtd's default logical block size

# Our busy-poll row: with one command outstanding, poll the socket this long before sleeping
# (`--busy-poll-us`, off by default; Linux's own busy_read is usually set to 50 us).
BUSY_POLL_US = 50

# name, pattern, bytes per I/O, queue depth, write, extra arguments for ours
WORKLOADS = [
    ("4k-randread-qd1", "rand", 4096, 1, False, []),
    ("4k-randread-qd1-poll", "rand", 4096, 1, False, ["--busy-poll-us", str(BUSY_POLL_US)]),
    ("4k-randread-qd32", "rand", 4096, 32, False, []),
    ("4k-randwrite-qd32", "rand", 4096, 32, True, []),
    ("1m-seqread-qd1", "seq", 1 << 20, 1, False, []),
    ("1m-seqread-qd8", "seq", 1 << 20, 8, False, []),
]
# The real isboot.ko under kldrun: name, kldrun bench mode, bytes per I/O, queue depth, write.
MODULE = os.environ.get("BENCH_MODULE", "1") != "0"
KLDRUN = os.environ.get("KLDRUN", os.path.join(REPO, "target/release/kldrun"))
ISBOOT_KO = os.environ.get("ISBOOT_KO", os.path.join(REPO, "target/kmod/isboot.ko"))
MODULE_TABLE = os.path.join(REPO, "tests/fixtures/ibft/nochap.bin")
MODULE_IQN = "iqn.2026-11.org.example:nochap"  # the fixture's target, on 10.0.2.2:3260
MODULE_MAC = "52:54:00:9a:bc:de"  # the fixture's NIC
MODULE_WORKLOADS = [
    ("ko-4k-randread-qd1", "rand", 4096, 1, False),
    ("ko-4k-randread-qd32", "rand", 4096, 32, False),
    ("ko-1m-seqread-qd8", "seq", 1 << 20, 8, False),
    ("ko-4k-randwrite-qd32", "rand", 4096, 32, True),
]
if not MODULE:
    MODULE_WORKLOADS = []
if os.environ.get("BENCH_WORKLOADS"):
    _want = os.environ["BENCH_WORKLOADS"].split(",")
    _unknown = set(_want) - {w[0] for w in WORKLOADS + MODULE_WORKLOADS}
    if _unknown:
        sys.exit(f"bench: unknown BENCH_WORKLOADS {sorted(_unknown)}; known: "
                 + ", ".join(w[0] for w in WORKLOADS + MODULE_WORKLOADS))
    WORKLOADS = [w for w in WORKLOADS if w[0] in _want]
    MODULE_WORKLOADS = [w for w in MODULE_WORKLOADS if w[0] in _want]


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ctl():
    """A tgtd control channel number (tgtd takes 0..32767; it names /var/run/tgtd/socket.N)."""
    n = free_port() % 30000 + 2000
    while os.path.exists(f"/var/run/tgtd/socket.{n}"):
        n = (n + 1) % 30000 + 2000
    return n


class Tgtd:
    """One tgtd on 127.0.0.1 with its own control port; the LUN a file in /dev/shm. With
    `netns`, in that network namespace on `addr`:3260 serving `iqn`."""

    def __init__(self, netns=None, addr="127.0.0.1", iqn=IQN):
        self.addr, self.iqn = addr, iqn
        self.port = 3260 if netns else free_port()
        self.ctl = free_ctl()
        self.image = f"/dev/shm/isboot-bench-{os.getpid()}{'-' + netns if netns else ''}.img"
        with open(self.image, "wb") as f:
            f.truncate(LUN_MIB << 20)
        # Touch every page so the LUN is in page cache.
        with open(self.image, "r+b") as f:
            chunk = b"\xa5" * (1 << 20)
            for _ in range(LUN_MIB):
                f.write(chunk)
        self.proc = subprocess.Popen(
            (["ip", "netns", "exec", netns] if netns else [])
            + ["tgtd", "-f", "-C", str(self.ctl), "--iscsi", f"portal={addr}:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while self.adm("--op", "show", "--mode", "system", check=False) != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                die("tgtd did not start")
            time.sleep(0.1)
        self.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", iqn)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", self.image)
        self.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    def adm(self, *args, check=True):
        r = subprocess.run(
            ["tgtadm", "-C", str(self.ctl), "--lld", "iscsi", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            self.stop()
            die(f"tgtadm {' '.join(args)} failed")
        return r.returncode

    def url(self):
        return f"iscsi://{self.addr}:{self.port}/{self.iqn}/1"

    def stop(self):
        # tgtd ignores SIGTERM: delete the target and the system, kill only if that fails.
        self.adm("--op", "delete", "--mode", "target", "--tid", "1", "--force", check=False)
        self.adm("--op", "delete", "--mode", "system", "--force", check=False)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.image):
            os.unlink(self.image)


class Lab:
    """kldrun's network namespace and the target's, joined by a veth (see the module doc)."""

    def __init__(self):
        self.node = f"isboot-bench-node-{os.getpid()}"
        self.peer = f"isboot-bench-tgt-{os.getpid()}"
        self.up = False
        try:
            self.ip("netns", "add", self.node)
            self.ip("netns", "add", self.peer)
            self.up = True
            self.ip("link", "add", "isb0", "address", MODULE_MAC, "netns", self.node, "type",
                    "veth", "peer", "name", "tgt0", "netns", self.peer)
            self.ip("-n", self.peer, "addr", "add", "10.0.2.2/24", "dev", "tgt0")
            # iscsi-perf's address is the one the module adds (SIOCAIFADDR replaces it).
            self.ip("-n", self.node, "addr", "add", "10.0.2.15/24", "dev", "isb0")
            for ns, dev in [(self.peer, "tgt0"), (self.peer, "lo"), (self.node, "isb0"),
                            (self.node, "lo")]:
                self.ip("-n", ns, "link", "set", dev, "up")
        except subprocess.CalledProcessError as e:
            self.stop()
            die(f"setting up the namespaces: {e}")

    @staticmethod
    def ip(*args):
        subprocess.run(["ip", *args], check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        if self.up:
            for ns in [self.node, self.peer]:
                subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
            self.up = False


def measured(argv, timeout):
    """Runs argv; returns (exit code or None on timeout, CPU seconds of the process, output).

    CPU is the change in this process's RUSAGE_CHILDREN (user + system) across the run, the
    same measure for both initiators."""
    before = os.times()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        code = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        code = None
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return code, cpu, out.decode(errors="replace")


def ours(url, pattern, bs, qd, write, extra):
    argv = [OURS, *extra, "bench", url, "--pattern", pattern, "--bs", str(bs), "--qd", str(qd),
            "--seconds", str(SECONDS)]
    if write:
        argv.append("--write")
    code, cpu, out = measured(argv, SECONDS + 60)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    kv = dict(p.split("=", 1) for p in last.split() if "=" in p)
    if code != 0 or "iops" not in kv or "mib_s" not in kv:
        die(f"iscsi-initiator bench failed or did not end with key=value (exit {code}):\n{out}")
    return float(kv["iops"]), float(kv["mib_s"]), cpu


def module(lab, pattern, bs, qd, write):
    """isboot.ko under kldrun in the lab's node namespace: (IOPS, MiB/s, CPU s, kldrun's line)."""
    mode = pattern + ("write" if write else "")
    argv = ["ip", "netns", "exec", lab.node, KLDRUN, "--preload", f"ibft_table={MODULE_TABLE}",
            "--timeout", str(SECONDS + 60), "--workload", f"bench:{mode}:{bs}:{qd}:{SECONDS}",
            ISBOOT_KO]
    code, cpu, out = measured(argv, SECONDS + 90)
    line = next((l for l in out.splitlines() if l.startswith("bench: ")), "")
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    if code != 0 or "iops" not in kv or "kldrun: leak check: clean" not in out:
        die(f"kldrun --workload bench failed, or left something behind (exit {code}):\n"
            + out[-3000:])
    return float(kv["iops"]), float(kv["mib_s"]), cpu, kv


def theirs(url, pattern, bs, qd, write, netns=None):
    if write:
        return None  # iscsi-perf (libiscsi 1.19) only reads
    argv = ["iscsi-perf", "-t", str(SECONDS), "-b", str(bs // BLOCK), "-m", str(qd), url]
    if pattern == "rand":
        argv.insert(1, "-r")
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    code, cpu, out = measured(argv, SECONDS + 60)
    m = re.findall(r"iops average (\d+) \((\d+) MB/s\)", out)
    if code != 0 or not m:
        die(f"iscsi-perf failed (exit {code}):\n{out[-2000:]}")
    iops = float(m[-1][0])
    return iops, iops * bs / (1 << 20), cpu


def main():
    for tool in ["tgtd", "tgtadm", "iscsi-perf"]:
        if not shutil.which(tool):
            die(f"{tool} not found: apt-get install tgt libiscsi-bin")
    if not os.path.exists(OURS):
        die(f"{OURS} not found: cargo build --release -p iscsi-initiator --features std")
    for f, how in [(KLDRUN, "cargo build --release -p kldrun"), (ISBOOT_KO, "make kmod")]:
        if MODULE_WORKLOADS and not os.path.exists(f):
            die(f"{f} not found: {how} (or BENCH_MODULE=0)")
    load0 = os.getloadavg()[0]
    results = {}
    kld = {}  # kldrun's own key=value lines, per ko-* workload
    if WORKLOADS:
        t = Tgtd()
        signal.signal(signal.SIGINT, lambda *_: (t.stop(), sys.exit(130)))
        try:
            for name, pattern, bs, qd, write, extra in WORKLOADS:
                o, th = [], []
                for _ in range(ROUNDS):
                    o.append(ours(t.url(), pattern, bs, qd, write, extra))
                    r = theirs(t.url(), pattern, bs, qd, write)
                    if r:
                        th.append(r)
                results[name] = (o, th)
                print(f"bench: {name} done", file=sys.stderr)
        finally:
            t.stop()
    if MODULE_WORKLOADS:
        lab = Lab()
        t = None
        signal.signal(signal.SIGINT, lambda *_: (t and t.stop(), lab.stop(), sys.exit(130)))
        try:
            t = Tgtd(netns=lab.peer, addr="10.0.2.2", iqn=MODULE_IQN)
            for name, pattern, bs, qd, write in MODULE_WORKLOADS:
                o, th, k = [], [], []
                for _ in range(ROUNDS):
                    r = module(lab, pattern, bs, qd, write)
                    o.append(r[:3])
                    k.append(r[3])
                    r = theirs(t.url(), pattern, bs, qd, write, netns=lab.node)
                    if r:
                        th.append(r)
                results[name] = (o, th)
                kld[name] = k
                print(f"bench: {name} done", file=sys.stderr)
        finally:
            if t:
                t.stop()
            lab.stop()

    def med(runs, i):
        return statistics.median(r[i] for r in runs)

    def cpu_per_io_us(runs):
        return statistics.median(r[2] / max(r[0] * SECONDS, 1) * 1e6 for r in runs)

    print(f"\n{ROUNDS} interleaved rounds of {SECONDS} s per initiator, tgtd on loopback, "
          f"{LUN_MIB} MiB LUN in /dev/shm; CPU = user + system of each initiator process; "
          f"{os.cpu_count()} CPUs, load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    hdr = (f"{'workload':<20} {'IOPS ours':>10} {'theirs':>10} {'ratio':>6}  "
           f"{'MiB/s ours':>10} {'theirs':>8} {'ratio':>6}  "
           f"{'CPU/IO ours':>11} {'theirs':>8} {'ratio':>6}")
    print(hdr)
    print("-" * len(hdr))
    ratios = {}
    for name, (o, th) in results.items():
        oi, om, oc = med(o, 0), med(o, 1), cpu_per_io_us(o)
        if th:
            ti, tm, tc = med(th, 0), med(th, 1), cpu_per_io_us(th)
            ri, rm, rc = oi / ti, om / tm, oc / tc
            ratios[name] = (ri, rm, rc)
            print(f"{name:<20} {oi:>10.0f} {ti:>10.0f} {ri:>6.2f}  {om:>10.1f} {tm:>8.1f} "
                  f"{rm:>6.2f}  {oc:>9.1f}us {tc:>6.1f}us {rc:>6.2f}")
        else:
            print(f"{name:<20} {oi:>10.0f} {'-':>10} {'-':>6}  {om:>10.1f} {'-':>8} {'-':>6}  "
                  f"{oc:>9.1f}us {'-':>8} {'-':>6}   (iscsi-perf cannot write)")
    if any(w[0].endswith("-poll") for w in WORKLOADS):
        print(f"\n*-poll: ours with --busy-poll-us {BUSY_POLL_US} (poll the socket up to "
              f"{BUSY_POLL_US} us before sleeping while one command is outstanding; off by "
              "default); theirs unchanged")
    if kld:
        print("\nko-*: ours is isboot.ko under kldrun, theirs iscsi-perf, both in kldrun's network "
              "namespace against a tgtd across a veth (not the loopback tgtd above). kldrun's own "
              "figures for the workload alone (medians):")
        print(f"  {'workload':<20} {'CPU/IO':>9} {'mallocs/IO':>10} {'mem_hwm':>10}")
        for name, k in kld.items():
            m = lambda key: statistics.median(float(x.get(key, "nan")) for x in k)  # noqa: E731
            print(f"  {name:<20} {m('cpu_us_per_io'):>7.1f}us {m('mallocs_per_io'):>10.2f} "
                  f"{m('mem_hwm') / 1024:>8.0f}Ki")
    parts = [f"{n}: iops x{r[0]:.2f} cpu/io x{r[2]:.2f}" for n, r in ratios.items()]
    print("\nsummary: ours/libiscsi " + "; ".join(parts))


if __name__ == "__main__":
    main()
