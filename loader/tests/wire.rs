//! Wireshark agrees with us. The demo's whole boot (a real Kea and tgtd, the simulated fabric)
//! is captured, and Debian's `tshark` — Wireshark's own IBA dissector
//! (`epan/dissectors/packet-infiniband.c`), not our wire code — decodes every packet. The test
//! checks that nothing is malformed or an expert error, and then reads back from tshark's
//! decode the fields that matter and compares them with what the sending code meant: LIDs,
//! QPNs, Q_Keys, P_Keys, the SMPs that bring the ports up, the SA's MAD headers, component
//! masks and records, IPoIB's type, ARP's hardware type and 20-byte addresses, DHCP's `htype`,
//! `hlen`, broadcast flag and client-id, and iSCSI on top.
//!
//! CRCs: tshark 4.0 shows the ICRC and VCRC but checks neither; it shows them for SMPs, IPoIB
//! and PathRecords, but not for MCMemberRecord MADs (its SA parser stops at the record). The
//! test computes both CRCs itself, bit by bit from IBA §7.8 (not with `hca::wire::crc`), and
//! compares them with the bytes in the file for every packet and with what tshark displays
//! wherever it displays them.
#![cfg(feature = "std")]

mod common;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use hca_sim::capture;

/// What tshark is asked for, per frame (first occurrence of each).
const FIELDS: &[&str] = &[
    "frame.number",
    "frame.len",
    "frame.protocols",
    "_ws.col.Info",
    "infiniband.lrh.vl",
    "infiniband.lrh.lnh",
    "infiniband.lrh.dlid",
    "infiniband.lrh.slid",
    "infiniband.lrh.pktlen",
    "infiniband.grh.sgid",
    "infiniband.grh.dgid",
    "infiniband.bth.opcode",
    "infiniband.bth.p_key",
    "infiniband.bth.destqp",
    "infiniband.deth.q_key",
    "infiniband.deth.srcqp",
    "infiniband.invariant.crc",
    "infiniband.variant.crc",
    "infiniband.mad.mgmtclass",
    "infiniband.mad.classversion",
    "infiniband.mad.method",
    "infiniband.mad.status",
    "infiniband.mad.attributeid",
    "infiniband.mad.attributemodifier",
    "infiniband.mad.transactionid",
    "infiniband.smpdirected.hoppointer",
    "infiniband.smpdirected.hopcount",
    "infiniband.smpdirected.drslid",
    "infiniband.smpdirected.drdlid",
    "infiniband.nodeinfo.nodetype",
    "infiniband.nodeinfo.nodeguid",
    "infiniband.nodeinfo.portguid",
    "infiniband.nodeinfo.localportnum",
    "infiniband.portinfo.lid",
    "infiniband.portinfo.mastersmlid",
    "infiniband.portinfo.portstate",
    "infiniband.portinfo.localportnum",
    "infiniband.p_keytable.p_keybase",
    "infiniband.p_keytable.membershiptype",
    "infiniband.sa.componentmask",
    "infiniband.mcmemberrecord.mgid",
    "infiniband.mcmemberrecord.portgid",
    "infiniband.mcmemberrecord.q_key",
    "infiniband.mcmemberrecord.mlid",
    "infiniband.mcmemberrecord.mtu",
    "infiniband.mcmemberrecord.p_key",
    "infiniband.mcmemberrecord.scope",
    "infiniband.mcmemberrecord.joinstate",
    "infiniband.pathrecord.dgid",
    "infiniband.pathrecord.sgid",
    "infiniband.pathrecord.dlid",
    "infiniband.pathrecord.slid",
    "infiniband.pathrecord.p_key",
    "infiniband.pathrecord.mtu",
    "infiniband.rwh.etype",
    "arp.hw.type",
    "arp.proto.type",
    "arp.hw.size",
    "arp.proto.size",
    "arp.opcode",
    "arp.src.hw",
    "arp.src.proto_ipv4",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "dhcp.hw.type",
    "dhcp.hw.len",
    "dhcp.flags.bc",
    "dhcp.client_id.iaid",
    "dhcp.client_id.duid_type",
    "dhcp.client_id.duid_ll_hw_type",
    "dhcp.client_id.link_layer_address",
    "iscsi.opcode",
];

/// One decoded frame: field name → tshark's text ("" when absent).
#[derive(Debug)]
struct Frame(BTreeMap<&'static str, String>);

impl Frame {
    fn s(&self, k: &str) -> &str {
        self.0
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} was not asked for"))
    }
    /// A number as tshark prints it (decimal or 0x hex).
    fn n(&self, k: &str) -> u64 {
        let v = self.s(k);
        let r = match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => v.parse(),
        };
        r.unwrap_or_else(|_| {
            panic!(
                "frame {}: {k} = {v:?} is not a number",
                self.s("frame.number")
            )
        })
    }
    fn has(&self, k: &str) -> bool {
        !self.s(k).is_empty()
    }
}

fn tshark(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("running tshark: {e} (Debian's tshark package; `make test-deps` installs it)")
        });
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}

fn decode(pcap: &Path) -> Vec<Frame> {
    let mut args = vec!["-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"];
    for f in FIELDS {
        args.push("-e");
        args.push(f);
    }
    tshark(pcap, &args)
        .lines()
        .map(|l| {
            let vals: Vec<&str> = l.split('\t').collect();
            assert_eq!(vals.len(), FIELDS.len(), "{l}");
            Frame(
                FIELDS
                    .iter()
                    .zip(vals)
                    .map(|(k, v)| (*k, v.to_string()))
                    .collect(),
            )
        })
        .collect()
}

/// CRC-32 of IBA §7.8.1, bit by bit (reflected polynomial 0xEDB88320, preset and final
/// complement), over the packet with the variant fields set to ones.
fn icrc_by_hand(packet: &[u8]) -> u32 {
    let mut p = packet.to_vec();
    let global = p[1] & 3 == 3;
    p[..8].fill(0xff);
    let mut bth = 8;
    if global {
        p[8] |= 0x0f;
        p[9..12].fill(0xff);
        p[15] = 0xff;
        bth = 48;
    }
    p[bth + 4] = 0xff;
    let mut c = !0u32;
    for b in p {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// CRC-16 of IBA §7.8.2, bit by bit (polynomial 0x100B reflected to 0xD008, preset and final
/// complement), over LRH through ICRC.
fn vcrc_by_hand(packet: &[u8]) -> u16 {
    let mut c = 0xffffu16;
    for &b in packet {
        c ^= u16::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xd008
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn gid(prefix: u64, guid: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&prefix.to_be_bytes());
    b[8..].copy_from_slice(&guid.to_be_bytes());
    Ipv6Addr::from(b).to_string()
}

const PREFIX: u64 = 0xfe80_0000_0000_0000;
const MGID: &str = "ff12:401b:ffff::ffff:ffff";
const GW_GUID: u64 = 0x0002_c903_00ab_0001;

/// What the boot's code meant, to compare tshark's decode with.
#[derive(Debug)]
struct Truth {
    pcap: PathBuf,
    packets: u64,
    /// (node GUID, port, LID) of the gateway's port 1 and the node's port 2.
    ports: [(u64, u8, u16); 2],
    gw_qpn: u32,
    lease: std::net::Ipv4Addr,
}

fn boot_and_capture(dir: &Path) -> Truth {
    let pcap = dir.join("boot.pcap");
    let p = pcap.clone();
    isboot_tests::netns::run(move || {
        let servers = common::servers();
        let world = common::world_with_capture(Some(&p));
        let sim = world.sim.clone();
        let (gw_node, node) = (0, world.node);
        let gw_qpn = world.gw.host.ipoib.hw_addr().qpn;
        let b = loader::sim::boot(world, &common::boot_config(), &mut |_| {})
            .unwrap_or_else(|e| panic!("{e}\n{}", servers.kea.log()));
        let packets = sim.stop_capture().unwrap();
        let lid = |n, p| sim.assigned_lid(n, p).expect("the SM gave the port a LID");
        assert_eq!(sim.assigned_lid(node, 1), None, "port 1 has no cable");
        Truth {
            pcap: p,
            packets,
            ports: [
                (GW_GUID, 1, lid(gw_node, 1)),
                (common::NODE_GUID, 2, lid(node, 2)),
            ],
            gw_qpn,
            lease: b.lease.address,
        }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tshark_decodes_the_whole_boot_as_our_code_meant_it() {
    let dir = isboot_tests::TempDir::new("wire").unwrap();
    let t = boot_and_capture(&dir.0);
    let frames = decode(&t.pcap);
    assert_eq!(frames.len() as u64, t.packets);
    assert!(t.packets > 40, "{} packets", t.packets);

    // 1. Everything is InfiniBand to Wireshark, nothing is malformed, no expert error.
    for f in &frames {
        assert!(
            f.s("frame.protocols")
                .starts_with("exported_pdu:infiniband"),
            "{f:?}"
        );
        assert!(!f.s("_ws.col.Info").contains("Malformed"), "{f:?}");
    }
    let experts = tshark(&t.pcap, &["-q", "-z", "expert,error"]);
    assert!(!experts.contains("Errors"), "{experts}");

    // 2. The bytes: PktLen, ICRC and VCRC, recomputed here by hand from IBA §7.8.
    let bytes = std::fs::read(&t.pcap).unwrap();
    let cap = capture::parse(&bytes).unwrap();
    let mut crcs_shown = 0;
    for (f, r) in frames.iter().zip(&cap.records) {
        let (_, pdu) = r.exported_pdu().unwrap();
        let words = f.n("infiniband.lrh.pktlen") as usize;
        assert_eq!(
            pdu.len(),
            words * 4 + 2,
            "PktLen counts LRH..ICRC, then the VCRC"
        );
        assert_eq!(f.n("frame.len") as usize, 18 + pdu.len());
        let (packet, vcrc) = pdu.split_at(words * 4);
        let (body, icrc) = packet.split_at(packet.len() - 4);
        let want_icrc = icrc_by_hand(body).to_le_bytes();
        let want_vcrc = vcrc_by_hand(packet).to_le_bytes();
        assert_eq!(icrc, want_icrc, "ICRC of frame {}", f.s("frame.number"));
        assert_eq!(vcrc, want_vcrc, "VCRC of frame {}", f.s("frame.number"));
        // tshark prints the wire bytes as a big-endian number.
        if f.has("infiniband.invariant.crc") {
            assert_eq!(
                f.s("infiniband.invariant.crc"),
                format!("{:#010x}", u32::from_be_bytes(want_icrc))
            );
            assert_eq!(
                f.s("infiniband.variant.crc"),
                format!("{:#06x}", u16::from_be_bytes(want_vcrc))
            );
            crcs_shown += 1;
        } else {
            // Only MCMemberRecord MADs lose them (Wireshark's SA parser).
            assert_eq!(f.s("infiniband.mad.attributeid"), "0x0038", "{f:?}");
        }
    }

    // Every packet is a UD SEND Only in the default partition.
    for f in &frames {
        assert_eq!(f.n("infiniband.bth.opcode"), 100);
        assert_eq!(f.n("infiniband.bth.p_key"), 0xffff);
    }
    let lids: BTreeMap<u16, (u64, u8)> = t.ports.iter().map(|&(g, p, l)| (l, (g, p))).collect();
    let gid_of_lid = |lid: u64| {
        let (g, p) = lids[&(lid as u16)];
        gid(PREFIX, g + u64::from(p))
    };
    let (smps, rest): (Vec<&Frame>, Vec<&Frame>) = frames
        .iter()
        .partition(|f| f.n("infiniband.bth.destqp") == 0);
    let (sa, ipoib): (Vec<&Frame>, Vec<&Frame>) = rest
        .into_iter()
        .partition(|f| f.n("infiniband.bth.destqp") == 1);

    // 3. SMPs: the SM brings both ports up with directed-route SMPs on VL15, QP0 to QP0.
    assert_eq!(smps.len(), 16);
    for f in &smps {
        assert_eq!(f.n("infiniband.lrh.vl"), 15);
        assert_eq!(f.n("infiniband.lrh.lnh"), 2);
        assert_eq!(
            (f.n("infiniband.lrh.dlid"), f.n("infiniband.lrh.slid")),
            (0xffff, 0xffff)
        );
        assert_eq!(
            (f.n("infiniband.deth.srcqp"), f.n("infiniband.deth.q_key")),
            (0, 0)
        );
        assert_eq!(f.n("infiniband.mad.mgmtclass"), 0x81);
        assert_eq!(f.n("infiniband.mad.classversion"), 1);
        assert_eq!(
            f.n("infiniband.smpdirected.hopcount"),
            2,
            "SM - switch - HCA"
        );
        assert_eq!(f.n("infiniband.smpdirected.drslid"), 0xffff);
        assert_eq!(f.n("infiniband.smpdirected.drdlid"), 0xffff);
        let response = f.n("infiniband.mad.method") == 0x81;
        // The D bit is status bit 15 (tshark's own D field is mis-masked in 4.0: always 0).
        assert_eq!(
            f.n("infiniband.mad.status"),
            if response { 0x8000 } else { 0 }
        );
        assert_eq!(
            f.n("infiniband.smpdirected.hoppointer"),
            if response { 2 } else { 0 }
        );
    }
    for &(guid, port, lid) in &t.ports {
        let pguid = guid + u64::from(port);
        let ni = smps
            .iter()
            .find(|f| {
                f.n("infiniband.mad.method") == 0x81
                    && f.n("infiniband.mad.attributeid") == 0x11
                    && f.n("infiniband.nodeinfo.portguid") == pguid
            })
            .unwrap_or_else(|| panic!("no NodeInfo answer from port GUID {pguid:#x}"));
        assert_eq!(ni.n("infiniband.nodeinfo.nodeguid"), guid);
        assert_eq!(ni.n("infiniband.nodeinfo.nodetype"), 1, "a channel adapter");
        assert_eq!(ni.n("infiniband.nodeinfo.localportnum"), u64::from(port));
        // Set(PortInfo) ARMED with the LID and the SM's LID, then ACTIVE; answered in kind.
        let sets: Vec<&&Frame> = smps
            .iter()
            .filter(|f| {
                f.n("infiniband.mad.method") == 0x02
                    && f.n("infiniband.mad.attributeid") == 0x15
                    && f.n("infiniband.portinfo.lid") == u64::from(lid)
            })
            .collect();
        let states: Vec<u64> = sets
            .iter()
            .map(|f| f.n("infiniband.portinfo.portstate"))
            .collect();
        assert_eq!(states, [3, 4], "ARMED then ACTIVE for LID {lid}");
        for s in &sets {
            assert_eq!(s.n("infiniband.portinfo.mastersmlid"), 1);
            assert_eq!(s.n("infiniband.mad.attributemodifier"), u64::from(port));
            assert_eq!(s.n("infiniband.portinfo.localportnum"), u64::from(port));
            let answer = smps
                .iter()
                .find(|a| {
                    a.n("infiniband.mad.method") == 0x81
                        && a.s("infiniband.mad.transactionid")
                            == s.s("infiniband.mad.transactionid")
                })
                .expect("each Set answered");
            assert_eq!(answer.n("infiniband.portinfo.lid"), u64::from(lid));
            assert_eq!(
                answer.s("infiniband.portinfo.portstate"),
                s.s("infiniband.portinfo.portstate")
            );
        }
    }
    let pkey_sets = smps
        .iter()
        .filter(|f| f.n("infiniband.mad.attributeid") == 0x16)
        .count();
    assert_eq!(pkey_sets, 4);
    for f in smps
        .iter()
        .filter(|f| f.n("infiniband.mad.attributeid") == 0x16)
    {
        // Entry 0: 0xffff, shown as base 0x7fff and the full-member bit.
        assert_eq!(f.n("infiniband.p_keytable.p_keybase"), 0x7fff);
        assert_eq!(f.n("infiniband.p_keytable.membershiptype"), 1);
    }

    // 4. SA MADs: the broadcast group joins and the PathRecord lookups, LID-routed on QP1.
    assert_eq!(sa.len(), 8);
    for f in &sa {
        assert_eq!(
            (f.n("infiniband.lrh.vl"), f.n("infiniband.lrh.lnh")),
            (0, 2)
        );
        assert_eq!(f.n("infiniband.deth.srcqp"), 1);
        assert_eq!(f.n("infiniband.deth.q_key"), 0x8001_0000);
        assert_eq!(f.n("infiniband.mad.mgmtclass"), 0x03);
        assert_eq!(f.n("infiniband.mad.classversion"), 2);
        assert_eq!(f.n("infiniband.mad.status"), 0);
        let (d, s) = (f.n("infiniband.lrh.dlid"), f.n("infiniband.lrh.slid"));
        let response = f.n("infiniband.mad.method") & 0x80 != 0;
        // Requests to the SM's LID 1, answers back to the asker.
        let asker = if response { (s, d) } else { (d, s) };
        assert_eq!(asker.0, 1, "{f:?}");
        assert!(lids.contains_key(&(asker.1 as u16)), "{f:?}");
        let me = gid_of_lid(asker.1);
        match f.n("infiniband.mad.attributeid") {
            0x38 => {
                assert_eq!(
                    f.n("infiniband.mad.method"),
                    if response { 0x81 } else { 0x02 }
                );
                // MGID | PortGID | JoinState: the join iPXE sends.
                assert_eq!(f.n("infiniband.sa.componentmask"), 0x1_0003);
                assert_eq!(f.s("infiniband.mcmemberrecord.mgid"), MGID);
                assert_eq!(f.s("infiniband.mcmemberrecord.portgid"), me);
                assert_eq!(f.n("infiniband.mcmemberrecord.joinstate"), 1);
                if response {
                    assert_eq!(f.n("infiniband.mcmemberrecord.q_key"), 0x0b1b);
                    assert_eq!(f.n("infiniband.mcmemberrecord.mlid"), 0xc000);
                    assert_eq!(f.n("infiniband.mcmemberrecord.mtu"), 4, "2048");
                    assert_eq!(f.n("infiniband.mcmemberrecord.p_key"), 0xffff);
                    assert_eq!(f.n("infiniband.mcmemberrecord.scope"), 2, "link-local");
                }
            }
            0x35 => {
                assert_eq!(
                    f.n("infiniband.mad.method"),
                    if response { 0x81 } else { 0x01 }
                );
                assert_eq!(
                    f.n("infiniband.sa.componentmask"),
                    0x200c,
                    "DGID|SGID|P_Key"
                );
                assert_eq!(f.s("infiniband.pathrecord.sgid"), me);
                assert_eq!(f.n("infiniband.pathrecord.p_key"), 0xffff);
                let dgid = f.s("infiniband.pathrecord.dgid").to_string();
                assert_ne!(dgid, me);
                if response {
                    assert_eq!(f.n("infiniband.pathrecord.slid"), asker.1);
                    assert_eq!(gid_of_lid(f.n("infiniband.pathrecord.dlid")), dgid);
                    assert_eq!(f.n("infiniband.pathrecord.mtu"), 4);
                }
            }
            a => panic!("SA attribute {a:#x}: {f:?}"),
        }
    }
    // Each request is answered once, under its TID, back to where it came from.
    for f in sa
        .iter()
        .filter(|f| f.n("infiniband.mad.method") & 0x80 == 0)
    {
        let answers = sa
            .iter()
            .filter(|g| {
                g.n("infiniband.mad.method") & 0x80 != 0
                    && g.s("infiniband.mad.transactionid") == f.s("infiniband.mad.transactionid")
                    && g.n("infiniband.mad.attributeid") == f.n("infiniband.mad.attributeid")
                    && g.n("infiniband.lrh.dlid") == f.n("infiniband.lrh.slid")
            })
            .count();
        assert_eq!(answers, 1, "{f:?}");
    }
    for (attr, method) in [(0x38, 0x02), (0x38, 0x81), (0x35, 0x01), (0x35, 0x81)] {
        let n = sa
            .iter()
            .filter(|f| {
                f.n("infiniband.mad.attributeid") == attr && f.n("infiniband.mad.method") == method
            })
            .count();
        assert_eq!(n, 2, "attribute {attr:#x} method {method:#x}: one per port");
    }

    // 5. IPoIB: Q_Key from the group, EtherType in the 4-byte header, broadcast through the
    //    group with a GRH, unicast to the QPN the peer's ARP gave.
    let mut qpn_of_gid: BTreeMap<String, u64> = BTreeMap::new();
    for f in ipoib.iter().filter(|f| f.has("arp.hw.type")) {
        assert_eq!(f.n("infiniband.rwh.etype"), 0x0806);
        assert_eq!(f.n("arp.hw.type"), 32, "IPoIB's ARP hardware type");
        assert_eq!(f.n("arp.proto.type"), 0x0800);
        assert_eq!((f.n("arp.hw.size"), f.n("arp.proto.size")), (20, 4));
        // The 20-byte address: 4 bytes of flags and QPN, then the port GID.
        let hw = f.s("arp.src.hw");
        assert_eq!(hw.len(), 40, "{hw}");
        let qpn = u64::from_str_radix(&hw[..8], 16).unwrap();
        assert_eq!(
            qpn,
            f.n("infiniband.deth.srcqp"),
            "the ARP QPN is the sender's QP"
        );
        let g: [u8; 16] = (0..16)
            .map(|i| u8::from_str_radix(&hw[8 + 2 * i..10 + 2 * i], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let g = Ipv6Addr::from(g).to_string();
        assert_eq!(g, gid_of_lid(f.n("infiniband.lrh.slid")));
        qpn_of_gid.insert(g, qpn);
    }
    assert_eq!(qpn_of_gid.len(), 2, "both ends announced themselves");
    assert_eq!(qpn_of_gid[&gid(PREFIX, GW_GUID + 1)], u64::from(t.gw_qpn));
    for f in &ipoib {
        assert_eq!(f.n("infiniband.deth.q_key"), 0x0b1b, "the group's Q_Key");
        assert_eq!(f.n("infiniband.lrh.vl"), 0);
        let et = f.n("infiniband.rwh.etype");
        assert!(et == 0x0800 || et == 0x0806, "{f:?}");
        let src = gid_of_lid(f.n("infiniband.lrh.slid"));
        assert_eq!(f.n("infiniband.deth.srcqp"), qpn_of_gid[&src]);
        if f.n("infiniband.lrh.dlid") == 0xc000 {
            assert_eq!(f.n("infiniband.lrh.lnh"), 3, "multicast carries a GRH");
            assert_eq!(f.n("infiniband.bth.destqp"), 0xff_ffff);
            assert_eq!(f.s("infiniband.grh.dgid"), MGID);
            assert_eq!(f.s("infiniband.grh.sgid"), src);
        } else {
            assert_eq!(f.n("infiniband.lrh.lnh"), 2);
            let dst = gid_of_lid(f.n("infiniband.lrh.dlid"));
            assert_eq!(f.n("infiniband.bth.destqp"), qpn_of_gid[&dst]);
        }
    }

    // 6. DHCP over IB (RFC 4390): htype 32, hlen 0, broadcast flag, the client-id form the
    //    node uses (0xff, IAID from the GUID, DUID-LL of type EUI-64 holding the GUID).
    let node_pguid = common::NODE_GUID + 2;
    let dhcp: Vec<&&Frame> = ipoib.iter().filter(|f| f.has("dhcp.hw.type")).collect();
    assert_eq!(dhcp.len(), 4, "DISCOVER, OFFER, REQUEST, ACK");
    for f in &dhcp {
        assert_eq!(f.n("dhcp.hw.type"), 32);
        assert_eq!(f.n("dhcp.hw.len"), 0);
        assert_eq!(f.n("dhcp.flags.bc"), 1);
        assert_eq!(
            f.s("dhcp.client_id.iaid"),
            format!("{:08x}", node_pguid as u32)
        );
        assert_eq!(f.n("dhcp.client_id.duid_type"), 3, "DUID-LL");
        assert_eq!(f.n("dhcp.client_id.duid_ll_hw_type"), 27, "EUI-64");
        assert_eq!(
            f.s("dhcp.client_id.link_layer_address"),
            format!("{node_pguid:016x}")
        );
    }
    assert_eq!(
        dhcp.iter().filter(|f| f.n("udp.srcport") == 68).count(),
        2,
        "the client's two"
    );

    // 7. TCP and iSCSI between the lease and the gateway, unicast both ways.
    let iscsi: Vec<&&Frame> = ipoib.iter().filter(|f| f.has("iscsi.opcode")).collect();
    assert!(iscsi.len() >= 10, "{} iSCSI PDUs", iscsi.len());
    let lease = t.lease.to_string();
    for f in &iscsi {
        let ends = [f.s("ip.src"), f.s("ip.dst")];
        assert!(
            ends.contains(&lease.as_str()) && ends.contains(&"192.0.2.1"),
            "{f:?}"
        );
        assert_ne!(f.n("infiniband.lrh.dlid"), 0xc000);
    }
    // Login, SCSI Command and Logout from the node; Login Response, Data-In and Logout
    // Response from the target (first PDU of each frame).
    let ops: Vec<u64> = iscsi.iter().map(|f| f.n("iscsi.opcode")).collect();
    for op in [0x03, 0x23, 0x01, 0x25, 0x06, 0x26] {
        assert!(
            ops.contains(&op),
            "iSCSI opcode {op:#x} missing from {ops:x?}"
        );
    }
    assert!(
        crcs_shown >= t.packets - 4,
        "tshark showed CRCs for {crcs_shown}"
    );
}
