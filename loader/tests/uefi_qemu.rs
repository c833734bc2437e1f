//! `isboot.efi` boots a real OS in QEMU (TCG): OVMF starts the image from an ESP; it reads
//! `\EFI\isboot\isboot.cfg`, gets an address by DHCP from a real Kea over a virtio-net NIC
//! (SNP) on a tap device in a private network namespace, logs in to a real tgtd with CHAP,
//! installs the iBFT and the LUN as a Block I/O disk, and starts the LUN's
//! `\EFI\BOOT\BOOTX64.EFI` — Debian's systemd-boot — which loads Debian's kernel and a tiny
//! initramfs from the same (iSCSI) ESP; the initramfs loads `iscsi_ibft` and prints
//! `/sys/firmware/ibft`, which must hold what the ROM learned. A wrong CHAP secret, an
//! unreachable target and a bad configuration each end with their one line and a return to
//! the firmware (OVMF's boot manager says the boot option failed).
//!
//! Needs root, `qemu-system-x86`, `ovmf`, `mtools`, `dosfstools`, `gdisk`, `systemd-boot-efi`,
//! `busybox-static`, `kea-dhcp4-server` and `tgt` (`make test-deps`), Debian's toolchain for
//! the image (`make rom`; built here if missing), and `apt-get download` of Debian's kernel
//! package (cached under target/rom-test). TCG, always: /dev/kvm is not used.
#![cfg(feature = "std")]

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use isboot_tests::kea::{self, Kea};
use isboot_tests::target::{TargetOpts, Tgtd};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const TARGET: &str = "iqn.2026-11.org.example:uefi";
const INITIATOR: &str = "iqn.2026-11.org.example:vm17";
const CHAP_USER: &str = "vm17";
const CHAP_SECRET: &str = "vm17-chap-secret";
const MAC: &str = "52:54:00:15:b0:17";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn work() -> PathBuf {
    repo().join("target/rom-test")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} {:?} failed: {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn need(bin: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!("{bin} not found: apt-get install {package} (make test-deps)");
}

/// The image: built by `make rom` (loader/scripts/build-efi.sh); built here when missing.
fn image() -> PathBuf {
    let p = repo().join("target/rom/isboot.efi");
    let r = run(Command::new(repo().join("loader/scripts/build-efi.sh"))
        .env("FEATURES_ONLY", "hca")
        .env("OUT", repo().join("target/rom")));
    if let Err(e) = r {
        panic!("building isboot.efi: {e}");
    }
    p
}

/// Debian's kernel package, downloaded once and unpacked: (vmlinuz, modules directory).
fn kernel() -> (PathBuf, PathBuf) {
    let cache = work().join("cache");
    let root = cache.join("linux");
    let find = || -> Option<(PathBuf, PathBuf)> {
        let boot = fs::read_dir(root.join("boot")).ok()?;
        let vmlinuz = boot
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("/vmlinuz-"))?;
        let ver = vmlinuz
            .file_name()?
            .to_str()?
            .strip_prefix("vmlinuz-")?
            .to_string();
        Some((vmlinuz, root.join("lib/modules").join(ver)))
    };
    if let Some(k) = find() {
        return k;
    }
    fs::create_dir_all(&cache).unwrap();
    // The package linux-image-amd64 depends on: the current kernel's image.
    let deps = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .expect("apt-cache");
    let deps = String::from_utf8_lossy(&deps.stdout);
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .unwrap_or_else(|| panic!("no kernel package behind linux-image-amd64: {deps}"))
        .to_string();
    run(Command::new("apt-get")
        .args(["download", "-q", &pkg])
        .current_dir(&cache))
    .unwrap_or_else(|e| panic!("{e}"));
    let deb = fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("the downloaded package");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root)).unwrap_or_else(|e| panic!("{e}"));
    let _ = fs::remove_file(&deb);
    find().expect("a vmlinuz in the kernel package")
}

/// A module's dependencies, from its `.modinfo` (`depends=a,b`).
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(i) = ko.windows(key.len()).position(|w| w == key) else {
        return vec![];
    };
    let rest = &ko[i + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_module(&p, name) {
                return Some(f);
            }
        } else if p.file_name()?.to_str()? == format!("{name}.ko")
            || p.file_name()?.to_str()? == format!("{}.ko", name.replace('_', "-"))
        {
            return Some(p);
        }
    }
    None
}

/// `iscsi_ibft` and what it needs, dependencies first.
fn modules(moddir: &Path) -> Vec<(String, Vec<u8>)> {
    fn add(moddir: &Path, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
        if out.iter().any(|(n, _)| n == name) {
            return;
        }
        let p = find_module(&moddir.join("kernel"), name)
            .unwrap_or_else(|| panic!("module {name} not in {}", moddir.display()));
        let b = fs::read(&p).unwrap();
        for d in depends(&b) {
            add(moddir, &d, out);
        }
        out.push((name.to_string(), b));
    }
    let mut out = Vec::new();
    add(moddir, "iscsi_ibft", &mut out);
    out
}

/// A newc cpio archive (the kernel's initramfs format).
struct Cpio(Vec<u8>, u32);

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.1 += 1;
        let h = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.1,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(0);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self.0.extend_from_slice(data);
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }
}

const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo "initramfs: Linux $($B uname -r) is up"
for m in $MODULES; do $B insmod /modules/$m.ko || echo "initramfs: insmod $m failed"; done
if [ -d /sys/firmware/ibft ]; then
    cd /sys/firmware/ibft
    for f in $($B find . -type f | $B sort); do
        echo "ibft: ${f#./}=$($B cat $f 2>/dev/null)"
    done
    cd /
else
    echo "ibft: /sys/firmware/ibft is absent"
fi
echo "initramfs: done"
$B poweroff -f
"#;

fn initramfs(moddir: &Path) -> Vec<u8> {
    let mut c = Cpio(Vec::new(), 0);
    for d in ["bin", "dev", "proc", "sys", "modules"] {
        c.entry(d, 0o040755, (0, 0), &[]);
    }
    c.entry("dev/console", 0o020600, (5, 1), &[]);
    c.entry(
        "bin/busybox",
        0o100755,
        (0, 0),
        &fs::read(need("busybox", "busybox-static")).unwrap(),
    );
    let mods = modules(moddir);
    let names: Vec<&str> = mods.iter().map(|(n, _)| n.as_str()).collect();
    let init = INIT.replace("$MODULES", &names.join(" "));
    c.entry("init", 0o100755, (0, 0), init.as_bytes());
    for (n, b) in &mods {
        c.entry(&format!("modules/{n}.ko"), 0o100644, (0, 0), b);
    }
    c.entry("TRAILER!!!", 0, (0, 0), &[]);
    c.0
}

/// A GPT disk of `mib` MiB whose one partition (an EFI system partition from 1 MiB) holds a
/// FAT file system with `files` (path on the ESP, contents).
fn esp_disk(path: &Path, mib: u64, files: &[(&str, Vec<u8>)]) {
    let fat = path.with_extension("fat");
    let _ = fs::remove_file(&fat);
    let fat_kib = (mib - 2) * 1024;
    run(Command::new(need("mkfs.vfat", "dosfstools"))
        .args(["-C", "-n", "ESP"])
        .arg(&fat)
        .arg(fat_kib.to_string()))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut dirs: Vec<String> = Vec::new();
    for (p, _) in files {
        let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        for i in 1..parts.len() {
            let d = parts[..i].join("/");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    for d in &dirs {
        run(Command::new(need("mmd", "mtools"))
            .arg("-i")
            .arg(&fat)
            .arg(format!("::/{d}")))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let tmp = path.with_extension("file");
    for (p, data) in files {
        fs::write(&tmp, data).unwrap();
        run(Command::new(need("mcopy", "mtools"))
            .arg("-i")
            .arg(&fat)
            .arg(&tmp)
            .arg(format!("::/{}", p.trim_start_matches('/'))))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_file(path);
    let f = fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
    drop(f);
    run(Command::new(need("sgdisk", "gdisk"))
        .args(["-n", "1:2048:0", "-t", "1:ef00", "-c", "1:ESP"])
        .arg(path))
    .unwrap_or_else(|e| panic!("{e}"));
    let fat_bytes = fs::read(&fat).unwrap();
    let mut disk = fs::read(path).unwrap();
    disk[1 << 20..(1 << 20) + fat_bytes.len()].copy_from_slice(&fat_bytes);
    fs::write(path, disk).unwrap();
    let _ = fs::remove_file(&fat);
}

/// The boot LUN: systemd-boot as the removable-media loader, an entry for the kernel and the
/// initramfs, all on its ESP.
fn lun_disk(dir: &Path) -> (Vec<u8>, u64) {
    let (vmlinuz, moddir) = kernel();
    let kernel = fs::read(&vmlinuz).unwrap();
    let ksize = kernel.len() as u64;
    let sdboot = fs::read("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
        .expect("systemd-bootx64.efi: apt-get install systemd-boot-efi (make test-deps)");
    let path = dir.join("lun.img");
    esp_disk(
        &path,
        40,
        &[
            ("EFI/BOOT/BOOTX64.EFI", sdboot),
            (
                "loader/loader.conf",
                b"default isboot.conf\ntimeout 0\neditor no\n".to_vec(),
            ),
            (
                "loader/entries/isboot.conf",
                b"title Debian from the iSCSI disk\nlinux /vmlinuz\ninitrd /initrd.img\n\
                  options console=ttyS0,115200 panic=-1 loglevel=4\n"
                    .to_vec(),
            ),
            ("vmlinuz", kernel),
            ("initrd.img", initramfs(&moddir)),
        ],
    );
    (fs::read(&path).unwrap(), ksize)
}

/// The ESP the firmware starts isboot.efi from, with its configuration.
fn rom_disk(dir: &Path, cfg: &str) -> PathBuf {
    let p = dir.join("rom.img");
    esp_disk(
        &p,
        16,
        &[
            ("EFI/BOOT/BOOTX64.EFI", fs::read(image()).unwrap()),
            ("EFI/isboot/isboot.cfg", cfg.as_bytes().to_vec()),
        ],
    );
    p
}

fn ip(args: &str) {
    run(Command::new("ip").args(args.split_whitespace())).unwrap_or_else(|e| panic!("{e}"));
}

/// In the test's namespace: a bridge at 192.0.2.1 with the VM's tap on it (and a veth pair so
/// that the bridge has carrier before the VM starts).
fn network() {
    ip("link set lo up");
    ip("link add br0 type bridge");
    ip("link add veth0 type veth peer name veth1");
    ip("link set veth0 master br0");
    ip("tuntap add dev tap0 mode tap");
    ip("link set tap0 master br0");
    for d in ["veth1", "veth0", "tap0", "br0"] {
        ip(&format!("link set {d} up"));
    }
    ip("addr add 192.0.2.1/24 dev br0");
}

struct Servers {
    kea: Kea,
    _tgtd: Tgtd,
}

fn servers(lun: Vec<u8>, dhcp_root_path: bool) -> Servers {
    let mut options = vec![("routers".into(), SERVER.to_string())];
    if dhcp_root_path {
        options.push((
            "root-path".into(),
            format!("iscsi:{SERVER}::3260:1:{TARGET}"),
        ));
        options.push(("iscsi-initiator-iqn".into(), INITIATOR.into()));
        options.push((
            "ipxe-encap-opts".into(),
            kea::ipxe_credentials(CHAP_USER, CHAP_SECRET, None),
        ));
    }
    let kea = Kea::start_on(
        &kea::Config {
            subnet: "192.0.2.0/24".into(),
            pool: "192.0.2.100 - 192.0.2.199".into(),
            relay: Ipv4Addr::new(127, 0, 0, 2),
            reservations: vec![],
            options,
            valid_lifetime: 3600,
        },
        "br0",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tgtd = Tgtd::try_start(TargetOpts {
        portal: Some(SocketAddr::from((SERVER, 3260))),
        iqn: TARGET.into(),
        ..TargetOpts::bytes(lun).with_chap(CHAP_USER, CHAP_SECRET, None)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    Servers { kea, _tgtd: tgtd }
}

struct Vm {
    child: Child,
    log: PathBuf,
}

impl Vm {
    fn start(dir: &Path, rom: &Path) -> Vm {
        let vars = dir.join("vars.fd");
        fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
            .expect("OVMF_VARS_4M.fd: apt-get install ovmf (make test-deps)");
        let log = dir.join("serial.log");
        let _ = fs::remove_file(&log);
        let child = Command::new(need("qemu-system-x86_64", "qemu-system-x86"))
            .args(["-machine", "q35,accel=tcg", "-m", "512", "-smp", "1"])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-drive")
            .arg("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd")
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ))
            .arg("-drive")
            .arg(format!("file={},format=raw,if=none,id=rom", rom.display()))
            .args(["-device", "virtio-blk-pci,drive=rom,bootindex=1"])
            .args([
                "-netdev",
                "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device",
            ])
            .arg(format!("virtio-net-pci,netdev=n0,romfile=,mac={MAC}"))
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64");
        Vm { child, log }
    }

    fn serial(&self) -> String {
        let b = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&b).replace('\r', "")
    }

    /// Waits until `done` holds for the serial output, QEMU exits, or `limit` passes; returns
    /// the output.
    fn wait(&mut self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + limit;
        loop {
            let s = self.serial();
            if done(&s) || Instant::now() >= end {
                return s;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.serial();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines<'a>(s: &'a str, prefix: &str) -> Vec<&'a str> {
    s.lines()
        .filter_map(|l| l.find(prefix).map(|i| &l[i..]))
        .collect()
}

fn show(s: &str) -> String {
    let mut out = String::new();
    for l in s.lines().filter(|l| {
        l.contains("isboot")
            || l.contains("ibft:")
            || l.contains("initramfs:")
            || l.contains("BdsDxe")
    }) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[test]
fn isboot_efi_boots_linux_from_the_iscsi_lun_and_hands_it_the_ibft() {
    let dir = isboot_tests::TempDir::new("uefi-qemu").unwrap();
    let d = dir.0.clone();
    let rom = rom_disk(&d, "# the DHCP server gives everything\nlink-wait=10\n");
    let (lun, ksize) = lun_disk(&d);
    let r = isboot_tests::netns::run(move || {
        network();
        let s = servers(lun, true);
        let mut vm = Vm::start(&d, &rom);
        let out = vm.wait(Duration::from_secs(400), |s| {
            s.contains("initramfs: done") || s.contains("back to the firmware")
        });
        (out, s.kea.log())
    });
    let (out, kea_log) = r.unwrap_or_else(|e| panic!("{e}"));
    let _ = std::io::stderr().write_all(show(&out).as_bytes());
    let rom = lines(&out, "isboot: ");
    let find = |p: &str| {
        rom.iter()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no ROM line {p:?}:\n{}\nKea:\n{kea_log}", show(&out)))
            .to_string()
    };
    // The ROM's steps, on the console.
    find("isboot: isboot 0.1.0: iSCSI boot ROM (UEFI)");
    find("isboot: configuration from \\EFI\\isboot\\isboot.cfg: ports [1, 2], link wait 10000 ms");
    assert_eq!(
        find("isboot: port 1: "),
        format!("isboot: port 1: link up; Ethernet {MAC}, MTU 1500")
    );
    let dhcp = find("isboot: DHCP: ");
    let addr = dhcp
        .strip_prefix("isboot: DHCP: ")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    assert!(addr.starts_with("192.0.2.1"), "{dhcp}");
    assert!(
        dhcp.ends_with(&format!(
            "/24 via 192.0.2.1 from server 192.0.2.1, root path iscsi:192.0.2.1::3260:1:{TARGET}"
        )),
        "{dhcp}"
    );
    assert_eq!(
        find("isboot: iSCSI: logged in"),
        format!("isboot: iSCSI: logged in to {TARGET} at 192.0.2.1:3260 as {INITIATOR} (CHAP)")
    );
    find("isboot: iSCSI: LUN 1 is 40 MiB; read 4096 boot bytes");
    assert_eq!(
        find("isboot: iBFT: NIC 0"),
        format!("isboot: iBFT: NIC 0 {MAC} (port 1 MAC), target 0 {TARGET}")
    );
    find("isboot: iBFT: ");
    find("isboot: disk: LUN 1 of iqn.2026-11.org.example:uefi is a UEFI Block I/O device (81920 blocks of 512 bytes), connected");
    find("isboot: starting \\EFI\\BOOT\\BOOTX64.EFI from the iSCSI disk");
    // The kernel came from the iSCSI disk through the ROM's Block I/O: the ROM counted at
    // least its size of reads after systemd-boot started.
    let mib: u64 = rom
        .iter()
        .filter_map(|l| l.strip_prefix("isboot: disk: "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        mib << 20 >= ksize,
        "only {mib} MiB read through Block I/O; the kernel is {ksize} bytes:\n{}",
        show(&out)
    );
    // Linux took the table, and it says what the ROM learned.
    assert!(out.contains("initramfs: Linux "), "{}", show(&out));
    let ibft: Vec<&str> = lines(&out, "ibft: ");
    let has = |kv: &str| {
        assert!(
            ibft.iter().any(|l| *l == format!("ibft: {kv}")),
            "Linux's /sys/firmware/ibft lacks {kv}:\n{}",
            show(&out)
        )
    };
    has(&format!("ethernet0/ip-addr={addr}"));
    has(&format!("ethernet0/mac={MAC}"));
    has("ethernet0/gateway=192.0.2.1");
    has("ethernet0/dhcp=192.0.2.1");
    has("ethernet0/origin=3");
    has(&format!("initiator/initiator-name={INITIATOR}"));
    has(&format!("target0/target-name={TARGET}"));
    has("target0/ip-addr=192.0.2.1");
    has("target0/port=3260");
    has("target0/chap-type=1");
    has(&format!("target0/chap-name={CHAP_USER}"));
    has(&format!("target0/chap-secret={CHAP_SECRET}"));
    assert!(out.contains("initramfs: done"), "{}", show(&out));
}

/// A failure case: the ROM's configuration, what DHCP gives, the line it must end with, and
/// the status OVMF's boot manager reports for the boot option.
fn fails(cfg: &str, dhcp_root_path: bool, line: &str, status: &str) {
    let dir = isboot_tests::TempDir::new("uefi-qemu-fail").unwrap();
    let d = dir.0.clone();
    let rom = rom_disk(&d, cfg);
    let lun = vec![0u8; 1 << 20];
    let r = isboot_tests::netns::run(move || {
        network();
        let _s = servers(lun, dhcp_root_path);
        let mut vm = Vm::start(&d, &rom);
        vm.wait(Duration::from_secs(300), |s| {
            s.contains("back to the firmware") && s.contains("BdsDxe: failed to start Boot")
        })
    });
    let out = r.unwrap_or_else(|e| panic!("{e}"));
    let _ = std::io::stderr().write_all(show(&out).as_bytes());
    let rom = lines(&out, "isboot: ");
    let last = rom.last().copied().unwrap_or("");
    assert!(
        last.starts_with(line) && last.ends_with("; back to the firmware"),
        "expected {line:?}, got:\n{}",
        show(&out)
    );
    // OVMF's boot manager took over again and says the boot option failed, with the image's
    // status.
    let tail = &out[out.rfind("back to the firmware").unwrap()..];
    let failed = tail
        .lines()
        .find(|l| l.contains("BdsDxe: failed to start Boot"))
        .unwrap_or_else(|| {
            panic!(
                "the firmware did not report the boot option as failed:\n{}",
                show(&out)
            )
        });
    assert!(failed.ends_with(&format!(": {status}")), "{failed}");
    assert!(!out.contains("initramfs:"));
}

#[test]
fn a_wrong_chap_secret_is_one_line_and_back_to_the_firmware() {
    // No root path from DHCP: the configuration's (and its wrong secret) are used.
    fails(
        &format!(
            "root-path=iscsi:192.0.2.1::3260:1:{TARGET}\ninitiator-iqn={INITIATOR}\n\
             username={CHAP_USER}\npassword=not-the-secret\nlink-wait=10\n"
        ),
        false,
        &format!("isboot: iSCSI: login to {TARGET} at 192.0.2.1:3260 failed: "),
        "Access Denied",
    );
}

#[test]
fn an_unreachable_target_is_one_line_and_back_to_the_firmware() {
    fails(
        &format!(
            "root-path=iscsi:192.0.2.77::3260:1:{TARGET}\nusername={CHAP_USER}\n\
             password={CHAP_SECRET}\n"
        ),
        false,
        &format!("isboot: iSCSI: login to {TARGET} at 192.0.2.77:3260 failed: "),
        "No Response",
    );
}

#[test]
fn a_bad_configuration_is_one_line_naming_it_and_back_to_the_firmware() {
    fails(
        "link-wait=10\nport-order=1\nroot_path=iscsi:192.0.2.1::::x\n",
        true,
        "isboot: \\EFI\\isboot\\isboot.cfg: line 3: unknown key \"root_path\" (known: ",
        "Load Error",
    );
}
