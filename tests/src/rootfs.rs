//! A FreeBSD root disk for tests, and the reading that proves root could mount from it.
//!
//! [`build`] lays a disk out as a FreeBSD install does (`gpart create -s gpt`, a
//! `freebsd-boot` partition, then `freebsd-ufs`): a GPT made by Debian's `sgdisk` (package
//! `gdisk`) whose second partition holds a UFS2 file system made by Debian's `makefs -t ffs -o
//! version=2` (package `makefs`) from a tree with `boot/`, `etc/` and `sbin/`.
//!
//! [`mountroot`] reads such a disk the way the kernel's mountroot would find its root: the GPT
//! (UEFI 2.10 §5.3), the `freebsd-ufs` partition, the UFS2 superblock where FreeBSD's
//! `ffs_sbsearch` looks for it (`sys/ufs/ffs/ffs_subr.c`: offsets 65536, 8192, 0, 262144; magic
//! 0x19540119 with `fs_sblockloc` equal to where it was found), the root inode (2) and its
//! directory entries (`sys/ufs/ufs/dir.h` `struct direct`). Layouts: `sys/ufs/ffs/fs.h`
//! (`struct fs`), `sys/ufs/ufs/dinode.h` (`struct ufs2_dinode`).

use std::io;
use std::path::Path;
use std::process::Command;

use crate::target::find;

/// The GPT partition type of `freebsd-ufs` (`sys/sys/disk/gpt.h` `GPT_ENT_TYPE_FREEBSD_UFS`),
/// as its mixed-endian bytes on disk.
const FREEBSD_UFS: [u8; 16] = guid_bytes(
    0x516e_7cb6,
    0x6ecf,
    0x11d6,
    [0x8f, 0xf8, 0x00, 0x02, 0x2d, 0x09, 0x71, 0x2b],
);

const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// A root disk image and what its root directory holds.
#[derive(Debug, Clone)]
pub struct RootImage {
    /// The whole disk.
    pub bytes: Vec<u8>,
    /// The root directory's entries but `.` and `..`, sorted bytewise.
    pub root_entries: Vec<String>,
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?}: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Builds a `size_mib` MiB GPT disk: p1 `freebsd-boot` (512 KiB), p2 `freebsd-ufs` with a
/// UFS2 root file system. Needs `makefs` and `sgdisk`.
pub fn build(dir: &Path, size_mib: u64) -> io::Result<RootImage> {
    let makefs = find("makefs", "makefs")?;
    let sgdisk = find("sgdisk", "gdisk")?;
    let tree = dir.join("root");
    for d in ["boot", "etc", "sbin", "dev", "tmp"] {
        std::fs::create_dir_all(tree.join(d))?;
    }
    std::fs::write(
        tree.join("boot/loader.conf"),
        "isboot_load=\"YES\"\nvfs.root.mountfrom=\"ufs:/dev/da0p2\"\n",
    )?;
    std::fs::write(
        tree.join("etc/fstab"),
        "# Device\tMountpoint\tFStype\tOptions\tDump\tPass#\n/dev/da0p2\t/\tufs\trw\t1\t1\n",
    )?;
    std::fs::write(tree.join("etc/rc.conf"), "hostname=\"node17\"\n")?;
    std::fs::write(
        tree.join("sbin/init"),
        b"#!/bin/sh\necho isboot test root\n",
    )?;
    // The partitions, 512-byte sectors: p1 at 40 (512 KiB), p2 from 2048 to 34 sectors before
    // the end (the backup GPT).
    let sectors = size_mib * 2048;
    let p2_start = 2048u64;
    let p2_sectors = sectors - p2_start - 34 - 2014;
    let ufs = dir.join("root.ufs");
    run(Command::new(&makefs)
        .args(["-t", "ffs", "-o", "version=2", "-s"])
        .arg(format!("{}", p2_sectors * 512))
        .arg(&ufs)
        .arg(&tree))?;
    let disk = dir.join("disk.img");
    std::fs::File::create(&disk)?.set_len(sectors * 512)?;
    run(Command::new(&sgdisk)
        // 4 KiB alignment, as gpart(8) gives (sgdisk would align to 1 MiB by default).
        .args([
            "-a",
            "8",
            "-n",
            "1:40:+512K",
            "-t",
            "1:a501",
            "-c",
            "1:boot",
        ])
        .args(["-n"])
        .arg(format!("2:{p2_start}:+{}", p2_sectors))
        .args(["-t", "2:a503", "-c", "2:rootfs"])
        .arg(&disk))?;
    let mut bytes = std::fs::read(&disk)?;
    let fs = std::fs::read(&ufs)?;
    let at = (p2_start * 512) as usize;
    bytes
        .get_mut(at..at + fs.len())
        .ok_or_else(|| io::Error::other("the file system is larger than its partition"))?
        .copy_from_slice(&fs);
    let mut root_entries: Vec<String> = std::fs::read_dir(&tree)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    root_entries.sort();
    Ok(RootImage {
        bytes,
        root_entries,
    })
}

/// A 16 MiB root disk from [`build`], made once per test process and shared.
pub fn test_image() -> &'static RootImage {
    static IMG: std::sync::OnceLock<RootImage> = std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let dir = crate::TempDir::new("rootfs").expect("a scratch directory");
        build(&dir.0, 16).unwrap_or_else(|e| panic!("building the root disk: {e}"))
    })
}

/// What mountroot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// The GPT partition index (1-based): `daNp<partition>`.
    pub partition: u32,
    /// Where the superblock was, in bytes from the partition's start.
    pub superblock_at: u64,
    /// The root directory's entries but `.` and `..`, sorted bytewise.
    pub entries: Vec<String>,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// [`mountroot`] on a disk read in whole blocks: `read(lba, blocks)`.
pub fn mountroot_blocks(
    read: &mut dyn FnMut(u64, u32) -> Result<Vec<u8>, String>,
    block_size: u32,
) -> Result<Mounted, String> {
    let bs = u64::from(block_size);
    mountroot(
        &mut |off, len| {
            let first = off / bs;
            let last = (off + len as u64).div_ceil(bs);
            let data = read(
                first,
                u32::try_from(last - first).map_err(|e| e.to_string())?,
            )?;
            let skip = (off - first * bs) as usize;
            data.get(skip..skip + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("short read at byte {off}"))
        },
        block_size,
    )
}

/// Finds root on a disk read through `read(byte offset, length)`: the `freebsd-ufs` partition
/// of its GPT, its UFS2 superblock and the root directory.
pub fn mountroot(
    read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, String>,
    block_size: u32,
) -> Result<Mounted, String> {
    let bs = u64::from(block_size);
    let hdr = read(bs, 92)?;
    if hdr.get(..8) != Some(b"EFI PART") {
        return Err("no GPT: LBA 1 does not start with \"EFI PART\"".into());
    }
    let entries_lba = le64(&hdr, 72).ok_or("short GPT header")?;
    let count = le32(&hdr, 80).ok_or("short GPT header")?;
    let size = le32(&hdr, 84).ok_or("short GPT header")?;
    if !(128..=4096).contains(&size) || count > 1024 {
        return Err(format!(
            "GPT entry size {size} or count {count} out of range"
        ));
    }
    let table = read(entries_lba * bs, (count * size) as usize)?;
    let (index, first) = (0..count)
        .find_map(|i| {
            let e = table.get((i * size) as usize..((i + 1) * size) as usize)?;
            (e[..16] == FREEBSD_UFS).then(|| (i + 1, le64(e, 32).unwrap_or(0)))
        })
        .ok_or("no freebsd-ufs partition in the GPT")?;
    let part = first * bs;
    // ffs_sbsearch's order (SBLOCKSEARCH in sys/ufs/ffs/fs.h).
    for sbloc in [65536u64, 8192, 0, 262144] {
        let sb = read(part + sbloc, 1376)?;
        let magic = le32(&sb, 1372).ok_or("short superblock")?;
        let loc = le64(&sb, 1000).ok_or("short superblock")?;
        if magic != 0x1954_0119 || loc != sbloc {
            continue;
        }
        let iblkno = u64::from(le32(&sb, 16).ok_or("short superblock")?);
        let fsize = u64::from(le32(&sb, 52).ok_or("short superblock")?);
        if !(512..=65536).contains(&fsize) {
            return Err(format!("fragment size {fsize} out of range"));
        }
        // Inode 2 (UFS_ROOTINO) is in cylinder group 0's inode table; UFS2 inodes are 256 bytes.
        let ino = read(part + iblkno * fsize + 2 * 256, 256)?;
        let mode = u16::from_le_bytes([ino[0], ino[1]]);
        if mode & 0o170000 != 0o040000 {
            return Err(format!("the root inode is not a directory (mode {mode:o})"));
        }
        let dsize = le64(&ino, 16).ok_or("short inode")?;
        let mut names = Vec::new();
        let mut left = dsize;
        for blk in 0..12 {
            if left == 0 {
                break;
            }
            let addr = le64(&ino, 112 + 8 * blk).ok_or("short inode")?;
            let n = left.min(fsize * 8);
            let data = read(part + addr * fsize, n as usize)?;
            let mut off = 0usize;
            while off + 8 <= data.len() {
                let d_ino = le32(&data, off).unwrap_or(0);
                let reclen = usize::from(u16::from_le_bytes([data[off + 4], data[off + 5]]));
                let namlen = usize::from(data[off + 7]);
                if reclen < 8 {
                    break;
                }
                if d_ino != 0 {
                    let name = data
                        .get(off + 8..off + 8 + namlen)
                        .ok_or("directory entry past its block")?;
                    let name = String::from_utf8_lossy(name).into_owned();
                    if name != "." && name != ".." {
                        names.push(name);
                    }
                }
                off += reclen;
            }
            left -= n;
        }
        names.sort();
        return Ok(Mounted {
            partition: index,
            superblock_at: sbloc,
            entries: names,
        });
    }
    Err("no UFS2 superblock where ffs_sbsearch looks (65536, 8192, 0, 262144)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_mounts_from_its_own_bytes() {
        let dir = crate::TempDir::new("rootfs").unwrap();
        let img = build(&dir.0, 16).unwrap_or_else(|e| panic!("{e}"));
        let b = &img.bytes;
        let m = mountroot(
            &mut |off, len| {
                b.get(off as usize..off as usize + len)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| format!("read past the end at {off}"))
            },
            512,
        )
        .unwrap();
        assert_eq!(m.partition, 2);
        assert_eq!(m.entries, img.root_entries);
        assert_eq!(m.entries, ["boot", "dev", "etc", "sbin", "tmp"]);
        // A damaged superblock magic is not mountable.
        let mut bad = b.clone();
        let at = 2048 * 512 + m.superblock_at as usize + 1372;
        bad[at] ^= 0xff;
        let r = mountroot(
            &mut |off, len| Ok(bad[off as usize..off as usize + len].to_vec()),
            512,
        );
        assert!(r.unwrap_err().contains("no UFS2 superblock"));
    }
}
