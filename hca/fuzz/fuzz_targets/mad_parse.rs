//! MADs from the wire: the common header, SMP attributes (NodeInfo, PortInfo, GUIDInfo,
//! P_KeyTable), directed-route SMP headers and SA records (MCMemberRecord, PathRecord). Must
//! never panic; a parsed MAD re-emits to the same bytes.
#![no_main]

use hca::wire::mad::Mad;
use hca::wire::sa::{self, McMemberRecord, PathRecord};
use hca::wire::smp::{self, GuidInfo, NodeInfo, PKeyTable, PortInfo};
use libfuzzer_sys::fuzz_target;
use zerocopy::IntoBytes;

fuzz_target!(|data: &[u8]| {
    let Ok(mad) = Mad::parse(data) else { return };
    assert_eq!(mad.as_bytes(), &data[..256]);
    let _ = mad.status().is_ok();
    let _ = mad.hdr.method.is_response();
    if let Ok(pi) = smp::smp_attr::<PortInfo>(&mad) {
        let _ = (pi.port_state(), pi.lid(), pi.sm_lid(), pi.sm_sl(), pi.neighbor_mtu(), pi.mtu_cap());
        if let Ok(gi) = smp::smp_attr::<GuidInfo>(&mad) {
            let _ = smp::port_gid(&pi, &gi);
        }
    }
    let _ = smp::smp_attr::<NodeInfo>(&mad);
    if let Ok(d) = smp::dr_smp_data(&mad) {
        let _ = (smp::dr_hops(&mad), d.dr_slid.get(), d.initial_path, d.return_path);
        let r = smp::dr_smp_response(&mad, 0, &d.return_path);
        assert!(r.hdr.method.is_response());
    }
    let _ = smp::smp_attr::<PKeyTable>(&mad);
    if let Ok(r) = sa::sa_record::<McMemberRecord>(&mad) {
        let _ = (r.mtu(), r.rate(), r.sl(), r.join_state(), r.mlid(), r.mgid.is_multicast());
    }
    if let Ok(r) = sa::sa_record::<PathRecord>(&mad) {
        let _ = (r.sl(), r.mtu(), r.rate());
    }
    if let Ok(d) = sa::sa_data(&mad) {
        let _ = sa::McMemberMask::from_bits_truncate(d.comp_mask.get());
        let _ = sa::PathRecordMask::from_bits_truncate(d.comp_mask.get());
    }
});
