#!/usr/bin/env python3
"""make bench: our iSCSI initiator against libiscsi's iscsi-perf, side by side.

Starts a fresh tgtd on loopback with a LUN backed by a file in /dev/shm (so it is in page
cache), then runs, interleaved (ours, theirs, ours, theirs, ...), the same workloads against the
same LUN with both initiators, measures each process's CPU (user + system, from wait4's rusage,
the same way for both), and prints a table with both figures and the ratios ours/theirs for
IOPS, MiB/s and CPU per I/O, ending with one summary line.

Environment: BENCH_SECONDS (per run, default 10), BENCH_ROUNDS (default 2), BENCH_LUN_MIB
(default 1024), ISCSI_INITIATOR (our binary; default target/release/iscsi-initiator),
BENCH_WORKLOADS (comma-separated names from the table below; default all).
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
if os.environ.get("BENCH_WORKLOADS"):
    _want = os.environ["BENCH_WORKLOADS"].split(",")
    _unknown = set(_want) - {w[0] for w in WORKLOADS}
    if _unknown:
        sys.exit(f"bench: unknown BENCH_WORKLOADS {sorted(_unknown)}; known: "
                 + ", ".join(w[0] for w in WORKLOADS))
    WORKLOADS = [w for w in WORKLOADS if w[0] in _want]


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
    """One tgtd on 127.0.0.1 with its own control port; the LUN a file in /dev/shm."""

    def __init__(self):
        self.port = free_port()
        self.ctl = free_ctl()
        self.image = f"/dev/shm/isboot-bench-{os.getpid()}.img"
        with open(self.image, "wb") as f:
            f.truncate(LUN_MIB << 20)
        # Touch every page so the LUN is in page cache.
        with open(self.image, "r+b") as f:
            chunk = b"\xa5" * (1 << 20)
            for _ in range(LUN_MIB):
                f.write(chunk)
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.ctl), "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while self.adm("--op", "show", "--mode", "system", check=False) != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                die("tgtd did not start")
            time.sleep(0.1)
        self.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN)
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
        return f"iscsi://127.0.0.1:{self.port}/{IQN}/1"

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


def theirs(url, pattern, bs, qd, write):
    if write:
        return None  # iscsi-perf (libiscsi 1.19) only reads
    argv = ["iscsi-perf", "-t", str(SECONDS), "-b", str(bs // BLOCK), "-m", str(qd), url]
    if pattern == "rand":
        argv.insert(1, "-r")
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
    load0 = os.getloadavg()[0]
    t = Tgtd()
    signal.signal(signal.SIGINT, lambda *_: (t.stop(), sys.exit(130)))
    results = {}
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
    parts = [f"{n}: iops x{r[0]:.2f} cpu/io x{r[2]:.2f}" for n, r in ratios.items()]
    print("\nsummary: ours/libiscsi " + "; ".join(parts))


if __name__ == "__main__":
    main()
