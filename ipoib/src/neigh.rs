//! The two caches between an IPv4 next hop and a UD address vector, as state with deadlines and
//! no I/O:
//!
//! - [`NeighCache`]: IPv4 address → 20-byte IPoIB link address, filled by ARP (RFC 826 with
//!   RFC 4391 §7's hardware type 32). An entry is *incomplete* (requests are being sent),
//!   *reachable* until it expires, then *stale*: still used, while broadcast requests re-confirm
//!   it; after [`NeighConfig::max_probes`] unanswered requests it is removed.
//! - [`PathCache`]: port GID → the LID, SL and MTU a PathRecord gives (IBA §15.2.5.16), with a
//!   retry schedule for the SA query and an expiry. A path is dropped as soon as something shows
//!   it is stale (a packet from that GID arriving from another LID, a failed send), so the next
//!   packet re-resolves it.
//!
//! Both are bounded: when full, the entry closest to expiry makes room.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use clock::{Duration, Instant};

use crate::wire::ipoib::{Gid, HwAddr};

/// Neighbour cache timers and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    /// How long an answered entry is used without re-confirming it.
    pub reachable: Duration,
    /// Interval between ARP requests for one address.
    pub retrans: Duration,
    /// Requests sent before an address is given up on.
    pub max_probes: u8,
    /// Entries at most.
    pub capacity: usize,
}

impl Default for NeighConfig {
    /// 60 s reachable, 1 s between 3 requests (RFC 1122 §2.3.2.1 asks for a timeout and at most
    /// one request per second per address), 64 entries.
    fn default() -> Self {
        Self {
            reachable: Duration::from_secs(60),
            retrans: Duration::from_secs(1),
            max_probes: 3,
            capacity: 64,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Neigh {
    hw: Option<HwAddr>,
    expires: Instant,
    probes: u8,
    next_probe: Instant,
}

/// What the neighbour timers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighDue {
    /// Send an ARP request for this address now.
    Probe(Ipv4Addr),
    /// The address did not answer: it was removed; drop what waits for it.
    Failed(Ipv4Addr),
}

/// IPv4 → link address.
#[derive(Debug, Clone)]
pub struct NeighCache {
    cfg: NeighConfig,
    entries: BTreeMap<Ipv4Addr, Neigh>,
}

impl NeighCache {
    /// An empty cache.
    pub fn new(cfg: NeighConfig) -> Self {
        Self {
            cfg,
            entries: BTreeMap::new(),
        }
    }

    /// The link address to use for `ip` (reachable or stale), if known.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<HwAddr> {
        self.entries.get(&ip).and_then(|e| e.hw)
    }

    /// True when `ip` is known and confirmed within [`NeighConfig::reachable`].
    pub fn is_reachable(&self, ip: Ipv4Addr, now: Instant) -> bool {
        self.entries
            .get(&ip)
            .is_some_and(|e| e.hw.is_some() && now < e.expires)
    }

    /// Starts resolving `ip` unless it is known or already being resolved; the first request is
    /// due at once.
    pub fn start(&mut self, ip: Ipv4Addr, now: Instant) {
        if self.entries.contains_key(&ip) {
            return;
        }
        self.make_room();
        self.entries.insert(
            ip,
            Neigh {
                hw: None,
                expires: now,
                probes: 0,
                next_probe: now,
            },
        );
    }

    /// Records `ip` at `hw` (an answer, or an ARP packet addressed to us).
    pub fn fill(&mut self, ip: Ipv4Addr, hw: HwAddr, now: Instant) {
        if !self.entries.contains_key(&ip) {
            self.make_room();
        }
        self.entries.insert(
            ip,
            Neigh {
                hw: Some(hw),
                expires: now + self.cfg.reachable,
                probes: 0,
                next_probe: now + self.cfg.reachable,
            },
        );
    }

    /// RFC 826's merge step: if `ip` is in the cache, update it to `hw`. Returns whether it was.
    pub fn update_if_known(&mut self, ip: Ipv4Addr, hw: HwAddr, now: Instant) -> bool {
        if self.entries.contains_key(&ip) {
            self.fill(ip, hw, now);
            true
        } else {
            false
        }
    }

    /// Forgets `ip`.
    pub fn remove(&mut self, ip: Ipv4Addr) {
        self.entries.remove(&ip);
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.clear();
    }

    /// Runs the timers: requests due now, and addresses given up on (removed).
    pub fn due(&mut self, now: Instant) -> Vec<NeighDue> {
        let mut out = Vec::new();
        let max = self.cfg.max_probes;
        let retrans = self.cfg.retrans;
        self.entries.retain(|ip, e| {
            let needs = e.hw.is_none() || now >= e.expires;
            if !needs || now < e.next_probe {
                return true;
            }
            if e.probes >= max {
                out.push(NeighDue::Failed(*ip));
                return false;
            }
            e.probes += 1;
            e.next_probe = now + retrans;
            out.push(NeighDue::Probe(*ip));
            true
        });
        out
    }

    /// The next time [`NeighCache::due`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| {
                if e.hw.is_none() {
                    e.next_probe
                } else {
                    e.next_probe.max(e.expires)
                }
            })
            .min()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn make_room(&mut self) {
        if self.entries.len() < self.cfg.capacity.max(1) {
            return;
        }
        // Prefer dropping an unresolved entry, then the one closest to expiry.
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.hw.is_some(), e.expires))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.entries.remove(&ip);
        }
    }
}

/// The part of a PathRecord a UD address vector needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    /// Destination LID.
    pub dlid: u16,
    /// Service level.
    pub sl: u8,
    /// Path MTU (IBA encoding).
    pub mtu: u8,
}

/// Path cache timers and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConfig {
    /// First wait for the SA's answer; waits double.
    pub first_timeout: Duration,
    /// Upper bound of one wait.
    pub max_timeout: Duration,
    /// Queries sent before the path is given up on.
    pub attempts: u8,
    /// How long a resolved path is used before it is looked up again.
    pub lifetime: Duration,
    /// Entries at most.
    pub capacity: usize,
}

impl Default for PathConfig {
    /// iPXE's MAD retry shape (0.25 s doubling), but four queries and a 2 s cap so a boot does
    /// not stall for long on a path; resolved paths live 10 minutes; 64 entries.
    fn default() -> Self {
        Self {
            first_timeout: Duration::from_millis(250),
            max_timeout: Duration::from_secs(2),
            attempts: 4,
            lifetime: Duration::from_secs(600),
            capacity: 64,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Resolved {
        info: PathInfo,
        expires: Instant,
    },
    Resolving {
        tid: Option<u64>,
        sent: u8,
        next_tx: Instant,
        timeout: Duration,
    },
}

/// What the path timers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathDue {
    /// Send a PathRecord query for this GID now and report its TID with [`PathCache::sent`].
    Query(Gid),
    /// The SA did not answer: the path was removed; drop what waits for it.
    Failed(Gid),
}

/// Port GID → path.
#[derive(Debug, Clone)]
pub struct PathCache {
    cfg: PathConfig,
    entries: BTreeMap<Gid, Path>,
}

impl PathCache {
    /// An empty cache.
    pub fn new(cfg: PathConfig) -> Self {
        Self {
            cfg,
            entries: BTreeMap::new(),
        }
    }

    /// The resolved, unexpired path to `gid`.
    pub fn get(&self, gid: &Gid, now: Instant) -> Option<PathInfo> {
        match self.entries.get(gid) {
            Some(Path::Resolved { info, expires }) if now < *expires => Some(*info),
            _ => None,
        }
    }

    /// Makes sure `gid` is resolved or being resolved (an expired path starts over).
    pub fn need(&mut self, gid: Gid, now: Instant) {
        match self.entries.get(&gid) {
            Some(Path::Resolving { .. }) => return,
            Some(Path::Resolved { expires, .. }) if now < *expires => return,
            Some(_) => {}
            None => self.make_room(),
        }
        self.entries.insert(
            gid,
            Path::Resolving {
                tid: None,
                sent: 0,
                next_tx: now,
                timeout: self.cfg.first_timeout,
            },
        );
    }

    /// Records the TID of the query just sent for `gid`.
    pub fn sent(&mut self, gid: &Gid, tid: u64) {
        if let Some(Path::Resolving { tid: t, .. }) = self.entries.get_mut(gid) {
            *t = Some(tid);
        }
    }

    /// The query [`PathCache::due`] asked for `gid` could not be sent (the HCA's MAD send
    /// queue was full): it is tried again at `retry`, not counted as an attempt and with its
    /// wait not doubled. (Without this a gateway resolving many new peers at once — a boot
    /// storm — sent 4 queries, the hermon driver's GSI send slots, and left the rest to the
    /// 250 ms doubling retry timer.)
    pub fn unsent(&mut self, gid: &Gid, retry: Instant) {
        let first = self.cfg.first_timeout;
        if let Some(Path::Resolving {
            tid,
            sent,
            next_tx,
            timeout,
        }) = self.entries.get_mut(gid)
        {
            *tid = None;
            *sent = sent.saturating_sub(1);
            *next_tx = retry;
            *timeout = Duration::from_nanos(timeout.as_nanos() as u64 / 2).max(first);
        }
    }

    /// An answer with `tid` arrived: returns the GID it resolved, if any query was waiting for
    /// it (stale answers are ignored).
    pub fn resolved(&mut self, tid: u64, info: PathInfo, now: Instant) -> Option<Gid> {
        let gid = self.entries.iter().find_map(|(g, p)| match p {
            Path::Resolving { tid: Some(t), .. } if *t == tid => Some(*g),
            _ => None,
        })?;
        self.entries.insert(
            gid,
            Path::Resolved {
                info,
                expires: now + self.cfg.lifetime,
            },
        );
        Some(gid)
    }

    /// The query with `tid` was refused by the SA: removes that path and returns its GID.
    pub fn refused(&mut self, tid: u64) -> Option<Gid> {
        let gid = self.entries.iter().find_map(|(g, p)| match p {
            Path::Resolving { tid: Some(t), .. } if *t == tid => Some(*g),
            _ => None,
        })?;
        self.entries.remove(&gid);
        Some(gid)
    }

    /// A packet from `gid` arrived from `slid`: if the cached path names another LID, it is
    /// stale (the SM moved the peer) and is dropped. Returns whether it was.
    pub fn observe(&mut self, gid: &Gid, slid: u16) -> bool {
        if let Some(Path::Resolved { info, .. }) = self.entries.get(gid) {
            if info.dlid != slid {
                self.entries.remove(gid);
                return true;
            }
        }
        false
    }

    /// Forgets the path to `gid`.
    pub fn invalidate(&mut self, gid: &Gid) {
        if matches!(self.entries.get(gid), Some(Path::Resolved { .. })) {
            self.entries.remove(gid);
        }
    }

    /// Forgets every resolved path (our own LID or the SM changed).
    pub fn flush(&mut self) {
        self.entries
            .retain(|_, p| matches!(p, Path::Resolving { .. }));
    }

    /// Runs the timers.
    pub fn due(&mut self, now: Instant) -> Vec<PathDue> {
        let mut out = Vec::new();
        let cfg = self.cfg;
        self.entries.retain(|gid, p| {
            let Path::Resolving {
                tid,
                sent,
                next_tx,
                timeout,
            } = p
            else {
                return true;
            };
            if now < *next_tx {
                return true;
            }
            if *sent >= cfg.attempts.max(1) {
                out.push(PathDue::Failed(*gid));
                return false;
            }
            *sent += 1;
            *tid = None;
            *next_tx = now + *timeout;
            *timeout = timeout.saturating_mul(2).min(cfg.max_timeout);
            out.push(PathDue::Query(*gid));
            true
        });
        out
    }

    /// The next time [`PathCache::due`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|p| match p {
                Path::Resolving { next_tx, .. } => Some(*next_tx),
                Path::Resolved { .. } => None,
            })
            .min()
    }

    fn make_room(&mut self) {
        if self.entries.len() < self.cfg.capacity.max(1) {
            return;
        }
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, p)| match p {
                Path::Resolved { expires, .. } => *expires,
                Path::Resolving { .. } => Instant::MAX,
            })
            .map(|(g, _)| *g);
        if let Some(g) = victim {
            self.entries.remove(&g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(n: u8) -> HwAddr {
        HwAddr {
            flags: 0,
            qpn: 0x48 + u32::from(n),
            gid: Gid::from_guid([0xfe, 0x80, 0, 0, 0, 0, 0, 0], [0, 2, 0xc9, 3, 0, 0, 0, n]),
        }
    }
    const IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

    /// `n` milliseconds after the origin.
    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn neighbour_is_requested_three_times_then_given_up() {
        let mut c = NeighCache::new(NeighConfig::default());
        c.start(IP, ms(0));
        assert_eq!(c.due(ms(0)), [NeighDue::Probe(IP)]);
        assert_eq!(c.due(ms(999)), []);
        assert_eq!(c.poll_at(), Some(ms(1000)));
        assert_eq!(c.due(ms(1000)), [NeighDue::Probe(IP)]);
        assert_eq!(c.due(ms(2000)), [NeighDue::Probe(IP)]);
        assert_eq!(c.due(ms(3000)), [NeighDue::Failed(IP)]);
        assert!(c.is_empty());
    }

    #[test]
    fn neighbour_expires_to_stale_and_is_reconfirmed() {
        let mut c = NeighCache::new(NeighConfig::default());
        c.fill(IP, hw(1), ms(0));
        assert!(c.is_reachable(IP, ms(59_999)));
        assert!(c.due(ms(59_999)).is_empty());
        // Stale: still used, and re-requested.
        assert!(!c.is_reachable(IP, ms(60_000)));
        assert_eq!(c.lookup(IP), Some(hw(1)));
        assert_eq!(c.due(ms(60_000)), [NeighDue::Probe(IP)]);
        // A new answer (the peer rebooted: another QPN) replaces it.
        assert!(c.update_if_known(IP, hw(2), ms(60_100)));
        assert_eq!(c.lookup(IP), Some(hw(2)));
        assert!(c.is_reachable(IP, ms(60_100)));
        assert!(!c.update_if_known(Ipv4Addr::new(192, 0, 2, 8), hw(3), ms(0)));
    }

    #[test]
    fn neighbour_cache_is_bounded() {
        let mut c = NeighCache::new(NeighConfig {
            capacity: 2,
            ..NeighConfig::default()
        });
        c.fill(Ipv4Addr::new(10, 0, 0, 1), hw(1), ms(0));
        c.fill(Ipv4Addr::new(10, 0, 0, 2), hw(2), ms(10));
        c.fill(Ipv4Addr::new(10, 0, 0, 3), hw(3), ms(20));
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 0, 1)), None);
    }

    #[test]
    fn path_retries_with_backoff_and_takes_only_its_answer() {
        let g = hw(1).gid;
        let mut p = PathCache::new(PathConfig::default());
        p.need(g, ms(0));
        assert_eq!(p.due(ms(0)), [PathDue::Query(g)]);
        p.sent(&g, 10);
        assert_eq!(p.due(ms(249)), []);
        assert_eq!(p.due(ms(250)), [PathDue::Query(g)]);
        p.sent(&g, 11);
        assert_eq!(p.poll_at(), Some(ms(750)));
        let info = PathInfo {
            dlid: 5,
            sl: 0,
            mtu: 4,
        };
        // The answer to the first, retransmitted, query is not taken.
        assert_eq!(p.resolved(10, info, ms(300)), None);
        assert_eq!(p.resolved(11, info, ms(300)), Some(g));
        assert_eq!(p.get(&g, ms(300)), Some(info));
        // A packet from the same GID but another LID: stale.
        assert!(!p.observe(&g, 5));
        assert!(p.observe(&g, 9));
        assert_eq!(p.get(&g, ms(301)), None);
    }

    #[test]
    fn path_gives_up_after_its_attempts() {
        let g = hw(1).gid;
        let mut p = PathCache::new(PathConfig::default());
        p.need(g, ms(0));
        let mut t = 0;
        let mut queries = 0;
        loop {
            let d = p.due(ms(t));
            if d.contains(&PathDue::Failed(g)) {
                break;
            }
            queries += d.len();
            t += 50;
            assert!(t < 60_000);
        }
        assert_eq!(queries, 4);
        // 0.25 + 0.5 + 1 + 2 s.
        assert_eq!(t, 3750);
        assert_eq!(p.get(&g, ms(t)), None);
    }
}
