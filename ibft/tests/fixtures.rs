//! Tables written by real iPXE firmware (`tests/fixtures/ibft`), each checked against the
//! Linux kernel's own parse of it.

mod common;

use common::{fixture, fixtures};
use ibft::linux::{attributes, Secrets, Value};
use ibft::{ChapType, Lun, NicFlags, Origin, TargetFlags};

fn render(table: &ibft::Ibft, secrets: Secrets) -> String {
    attributes(table, secrets)
        .iter()
        .map(|a| format!("{a}\n"))
        .collect()
}

#[test]
fn every_fixture_reproduces_the_linux_view_line_for_line() {
    for (name, bin, linux) in fixtures() {
        let parsed = ibft::parse(&bin).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
        let ours = render(&parsed.table, Secrets::Show);
        let want: Vec<&str> = linux.lines().collect();
        let got: Vec<&str> = ours.lines().collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name}: line {}", i + 1);
        }
        assert_eq!(got.len(), want.len(), "{name}: number of lines");
    }
}

#[test]
fn secrets_are_hidden_unless_asked_for() {
    for (name, bin, linux) in fixtures() {
        let parsed = ibft::parse(&bin).unwrap();
        let hidden = render(&parsed.table, Secrets::Hide);
        for line in linux.lines().filter(|l| l.contains("secret=")) {
            let (path, secret) = line.split_once('=').unwrap();
            assert!(!secret.is_empty());
            assert!(!hidden.contains(secret), "{name}: {path} leaked");
            assert!(
                hidden.contains(&format!("{path}=<hidden>")),
                "{name}: {path}"
            );
        }
        // Everything else is the same.
        let strip = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.contains("secret="))
                .map(String::from)
                .collect()
        };
        assert_eq!(strip(&hidden), strip(linux.as_str()), "{name}");
    }
}

#[test]
fn mutual_fixture_carries_both_credentials() {
    let t = ibft::parse(&fixture("mutual")).unwrap().table;
    let tg = &t.targets[0];
    assert_eq!(tg.chap_type, ChapType::Mutual);
    assert_eq!(tg.chap_name.as_deref(), Some("node-chap"));
    assert_eq!(
        tg.chap_secret.as_ref().unwrap().expose(),
        b"Kx9-chap-Secret"
    );
    assert_eq!(tg.reverse_chap_name.as_deref(), Some("array-chap"));
    assert_eq!(
        tg.reverse_chap_secret.as_ref().unwrap().expose(),
        b"Tz7-target-Secret"
    );
}

#[test]
fn two_targets_fixture_luns_ports_and_association_from_the_raw_bytes() {
    let bin = fixture("two_targets");
    let t = ibft::parse(&bin).unwrap().table;
    assert_eq!(t.targets.len(), 2);
    // iPXE's script: iscsi:10.0.2.2::3260:1:…two-a and iscsi:10.0.2.2::3262:2:…two-b.
    assert_eq!(t.targets[0].port, 3260);
    assert_eq!(t.targets[1].port, 3262);
    assert_eq!(t.targets[0].lun, Lun([0, 1, 0, 0, 0, 0, 0, 0]));
    assert_eq!(t.targets[1].lun, Lun([0, 2, 0, 0, 0, 0, 0, 0]));
    assert_eq!(t.targets[1].lun.number(), Some(2));
    // The LUN bytes sit at +24 of each target structure, in SAM order.
    let o = common::offsets(&bin);
    assert_eq!(
        &bin[o.targets[1] + 24..o.targets[1] + 32],
        &[0, 2, 0, 0, 0, 0, 0, 0]
    );
    for tg in &t.targets {
        assert_eq!(tg.nic_association, 0);
        assert!(tg
            .flags
            .contains(TargetFlags::BLOCK_VALID | TargetFlags::BOOT_SELECTED));
        assert_eq!(t.nic_for(tg).unwrap().index, 0);
    }
    assert_eq!(t.boot_target().unwrap().index, 0);
}

#[test]
fn static_fixture_has_manual_origin_and_no_dhcp_server() {
    let t = ibft::parse(&fixture("static_e1000")).unwrap().table;
    let n = &t.nics[0];
    assert_eq!(n.origin, Origin::MANUAL);
    assert_eq!(n.dhcp_server, None);
    assert!(n.flags.contains(NicFlags::BLOCK_VALID));
}

#[test]
fn hostname_fixture_names_the_host_and_derives_the_initiator() {
    let t = ibft::parse(&fixture("hostname")).unwrap().table;
    let host = t.nics[0].hostname.clone().expect("hostname");
    let ini = t.initiator.name.clone().unwrap();
    // iPXE derives iqn.2010-04.org.ipxe:<hostname> when no initiator-iqn is set.
    assert!(ini.ends_with(&format!(":{host}")), "{ini} / {host}");
}

#[test]
fn fixtures_round_trip_through_the_builder() {
    for (name, bin, _) in fixtures() {
        let t = ibft::parse(&bin).unwrap().table;
        let rebuilt = ibft::build(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = ibft::parse(&rebuilt).unwrap();
        assert_eq!(again.table, t, "{name}");
        assert!(again.warnings.is_empty(), "{name}: {:?}", again.warnings);
        // The Linux view is unchanged by the trip.
        assert_eq!(
            attributes(&again.table, Secrets::Show),
            attributes(&t, Secrets::Show),
            "{name}"
        );
    }
}

#[test]
fn numbers_in_the_view_are_typed() {
    let t = ibft::parse(&fixture("two_targets")).unwrap().table;
    let attrs = attributes(&t, Secrets::Hide);
    let port = attrs
        .iter()
        .find(|a| a.dir == "target1" && a.name == "port")
        .unwrap();
    assert_eq!(port.value, Value::Number(3262));
}
