//! The event mix of the Nexmark generator: global events are numbered
//! `n = 0, 1, 2, ...` and cut into cycles of `person + auction + bid`
//! events; in each cycle the first `person` events are persons, the next
//! `auction` are auctions and the rest are bids (nexmark-flink's
//! `person.proportion`, `auction.proportion`, `bid.proportion`, default
//! 1 : 3 : 46). Ids follow from an event's number alone.

use super::kind::NexmarkKind;

/// How many persons, auctions and bids each cycle of events holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proportions {
    /// Persons per cycle (at least 1).
    pub person: u64,
    /// Auctions per cycle (at least 1).
    pub auction: u64,
    /// Bids per cycle (at least 1).
    pub bid: u64,
}

impl Default for Proportions {
    /// The standard mix 1 : 3 : 46.
    fn default() -> Self {
        Proportions {
            person: 1,
            auction: 3,
            bid: 46,
        }
    }
}

/// Largest accepted proportion, so cycle arithmetic cannot overflow.
pub const MAX_PROPORTION: u64 = 1_000_000;

impl Proportions {
    /// A mix, if every proportion is in `1..=MAX_PROPORTION`.
    pub fn new(person: u64, auction: u64, bid: u64) -> Option<Self> {
        let ok = |p: u64| (1..=MAX_PROPORTION).contains(&p);
        (ok(person) && ok(auction) && ok(bid)).then_some(Proportions {
            person,
            auction,
            bid,
        })
    }

    /// Events per cycle.
    #[inline]
    pub fn total(&self) -> u64 {
        self.person + self.auction + self.bid
    }

    /// The kind of global event `n`.
    #[inline]
    pub fn of_event(&self, n: u64) -> NexmarkKind {
        let offset = n % self.total();
        if offset < self.person {
            NexmarkKind::Person
        } else if offset < self.person + self.auction {
            NexmarkKind::Auction
        } else {
            NexmarkKind::Bid
        }
    }

    /// Positions `[start, end)` of `kind` within a cycle.
    #[inline]
    pub fn cycle_range(&self, kind: NexmarkKind) -> (u64, u64) {
        match kind {
            NexmarkKind::Person => (0, self.person),
            NexmarkKind::Auction => (self.person, self.person + self.auction),
            NexmarkKind::Bid => (self.person + self.auction, self.total()),
        }
    }

    /// Number of events of `kind` among global events `[0, n)`.
    pub fn count_before(&self, kind: NexmarkKind, n: u64) -> u64 {
        let (start, end) = self.cycle_range(kind);
        let in_cycle = (n % self.total()).clamp(start, end) - start;
        (n / self.total()) * (end - start) + in_cycle
    }

    /// Last person id (base 0) generated at or before event `n` (`lastBase0PersonId`).
    #[inline]
    pub fn last_base0_person_id(&self, n: u64) -> u64 {
        let epoch = n / self.total();
        let offset = (n % self.total()).min(self.person - 1);
        epoch * self.person + offset
    }

    /// Last auction id (base 0) generated at or before event `n`
    /// (`lastBase0AuctionId`); -1 before the first auction.
    #[inline]
    pub fn last_base0_auction_id(&self, n: u64) -> i64 {
        let epoch = (n / self.total()) as i64;
        let offset = n % self.total();
        let auction = self.auction as i64;
        if offset < self.person {
            (epoch - 1) * auction + auction - 1
        } else if offset >= self.person + self.auction {
            epoch * auction + auction - 1
        } else {
            epoch * auction + (offset - self.person) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_cycle() {
        let mix = Proportions::default();
        assert_eq!(mix.total(), 50);
        assert_eq!(mix.of_event(0), NexmarkKind::Person);
        assert_eq!(mix.of_event(3), NexmarkKind::Auction);
        assert_eq!(mix.of_event(4), NexmarkKind::Bid);
        assert_eq!(mix.of_event(50), NexmarkKind::Person);
        assert_eq!(mix.count_before(NexmarkKind::Bid, 5000), 4600);
        assert_eq!(mix.last_base0_auction_id(0), -1);
        assert_eq!(mix.last_base0_auction_id(2), 1);
        assert_eq!(mix.last_base0_person_id(99), 1);
    }

    #[test]
    fn other_mixes() {
        let mix = Proportions::new(2, 1, 3).expect("valid");
        let kinds: Vec<_> = (0..6).map(|n| mix.of_event(n)).collect();
        use NexmarkKind::*;
        assert_eq!(kinds, vec![Person, Person, Auction, Bid, Bid, Bid]);
        assert_eq!(mix.count_before(Person, 7), 3);
        assert_eq!(mix.last_base0_person_id(1), 1);
        assert_eq!(mix.last_base0_person_id(5), 1);
        assert_eq!(mix.last_base0_person_id(6), 2);
        assert_eq!(mix.last_base0_auction_id(2), 0);
        assert_eq!(mix.last_base0_auction_id(7), 0);
        assert_eq!(mix.last_base0_auction_id(8), 1);
        assert!(Proportions::new(0, 1, 1).is_none());
        assert!(Proportions::new(1, 1, MAX_PROPORTION + 1).is_none());
    }
}
