//! Fault injection as a middleware on the fabric: every packet in flight passes through the
//! chain; each stage may drop it, corrupt it or delay it. Deterministic: all randomness comes
//! from the world's seeded [`Rng`].

/// A seeded pseudo-random generator (splitmix64): the same seed replays the same run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// True with probability `permille`/1000.
    pub fn chance(&mut self, permille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(permille)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// What a middleware stage decides for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on after this extra delay (ns).
    Pass(u64),
    /// Drop it.
    Drop,
}

/// One stage of the fault chain.
pub trait Middleware {
    /// Inspects (and may modify) a packet in flight at time `now` (ns).
    fn process(&mut self, now: u64, rng: &mut Rng, pkt: &mut Vec<u8>) -> Verdict;
}

/// Drops packets with a fixed probability.
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    /// Per-mille drop probability.
    pub permille: u32,
}

impl Middleware for Loss {
    fn process(&mut self, _: u64, rng: &mut Rng, _: &mut Vec<u8>) -> Verdict {
        if rng.chance(self.permille) {
            Verdict::Drop
        } else {
            Verdict::Pass(0)
        }
    }
}

/// Flips one random bit after the LRH with a fixed probability (the receiver's ICRC check
/// catches it; the LRH is covered by the link-level VCRC, which is not modelled).
#[derive(Clone, Copy, Debug)]
pub struct Corrupt {
    /// Per-mille corruption probability.
    pub permille: u32,
}

impl Middleware for Corrupt {
    fn process(&mut self, _: u64, rng: &mut Rng, pkt: &mut Vec<u8>) -> Verdict {
        if pkt.len() > 8 && rng.chance(self.permille) {
            let i = 8 + rng.below(pkt.len() as u64 - 8) as usize;
            if let Some(b) = pkt.get_mut(i) {
                *b ^= 1 << rng.below(8);
            }
        }
        Verdict::Pass(0)
    }
}

/// Adds latency: a fixed part and a uniform jitter.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Fixed extra delay (ns).
    pub extra_ns: u64,
    /// Jitter bound (ns).
    pub jitter_ns: u64,
}

impl Middleware for Latency {
    fn process(&mut self, _: u64, rng: &mut Rng, _: &mut Vec<u8>) -> Verdict {
        Verdict::Pass(self.extra_ns + rng.below(self.jitter_ns + 1))
    }
}

/// A packet predicate.
pub type PacketPredicate = Box<dyn FnMut(&[u8]) -> bool>;

/// Drops the first `count` packets a predicate selects (e.g. "the first SA response").
pub struct DropMatching {
    /// How many more to drop.
    pub count: u32,
    /// Which packets.
    pub predicate: PacketPredicate,
    /// How many were dropped.
    pub dropped: u32,
}

impl core::fmt::Debug for DropMatching {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DropMatching")
            .field("count", &self.count)
            .finish()
    }
}

impl Middleware for DropMatching {
    fn process(&mut self, _: u64, _: &mut Rng, pkt: &mut Vec<u8>) -> Verdict {
        if self.count > 0 && (self.predicate)(pkt) {
            self.count -= 1;
            self.dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_loss_rate_is_plausible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut loss = Loss { permille: 250 };
        let mut r = Rng::new(1);
        let dropped = (0..4000)
            .filter(|_| loss.process(0, &mut r, &mut vec![0]) == Verdict::Drop)
            .count();
        assert!((800..1200).contains(&dropped), "{dropped}");
    }
}
