//! The random values of the standard Nexmark generator: its constants
//! (`GeneratorConfig` / `NexmarkConfiguration` defaults), the per-event RNG
//! and what it draws (prices, ids, strings), and the fixed channel table of
//! bids.

use std::sync::OnceLock;

pub(super) const FIRST_PERSON_ID: i64 = 1000;
pub(super) const FIRST_AUCTION_ID: i64 = 1000;
pub(super) const FIRST_CATEGORY_ID: i64 = 10;
pub(super) const NUM_CATEGORIES: u64 = 5;
/// `hotAuctionRatio`: P(bid on a hot auction) = 1 - 1/2.
pub(super) const HOT_AUCTION_RATIO: u64 = 2;
/// `hotSellersRatio`: P(auction by a hot seller) = 1 - 1/4.
pub(super) const HOT_SELLERS_RATIO: u64 = 4;
/// `hotBiddersRatio`: P(bid by a hot bidder) = 1 - 1/4.
pub(super) const HOT_BIDDERS_RATIO: u64 = 4;
/// Hot auctions/sellers/bidders are the first of each block of this many ids.
pub(super) const HOT_BLOCK: u64 = 100;
pub(super) const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
pub(super) const NUM_ACTIVE_PEOPLE: u64 = 1000;
pub(super) const PERSON_ID_LEAD: u64 = 10;
pub(super) const AUCTION_ID_LEAD: u64 = 10;
pub(super) const HOT_CHANNELS_RATIO: u64 = 2;
pub(super) const CHANNELS_NUMBER: usize = 10_000;
pub(super) const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
pub(super) const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
pub(super) const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
pub(super) const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
pub(super) const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// A wyrand generator, seeded per event from `(seed, n)`.
#[derive(Clone, Copy)]
pub(super) struct Rng(pub(super) u64);

/// The splitmix64 finalizer: a cheap, well-mixing 64-bit hash.
#[inline]
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    #[inline]
    pub(super) fn for_event(seed_mix: u64, n: u64) -> Self {
        Rng(splitmix64(seed_mix ^ n))
    }

    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, bound)` (Java's `nextInt(bound)` / `nextLong(bound)`).
    #[inline]
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub(super) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `PriceGenerator.nextPrice`: `round(10^(u*6) * 100)`, log-uniform cents.
    #[inline]
    pub(super) fn price(&mut self) -> i64 {
        ((self.next_f64() * (6.0 * std::f64::consts::LN_10)).exp() * 100.0).round() as i64
    }

    /// `PersonGenerator.nextBase0PersonId`: one of the active people or a few ahead.
    #[inline]
    pub(super) fn base0_person_id(&mut self, last_person: u64) -> u64 {
        let num_people = last_person + 1;
        let active = num_people.min(NUM_ACTIVE_PEOPLE);
        num_people - active + self.below(active + PERSON_ID_LEAD)
    }

    /// `AuctionGenerator.nextBase0AuctionId`: an auction likely still in flight,
    /// or a few ahead.
    #[inline]
    pub(super) fn base0_auction_id(&mut self, last_auction: i64) -> u64 {
        let max = last_auction.max(0) as u64;
        let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
        min + self.below(max - min + 1 + AUCTION_ID_LEAD)
    }

    /// `StringsGenerator.nextString`: 3..max_len-1 letters with the odd
    /// `filler` (space, trimmed away at the ends when `trim`).
    pub(super) fn push_string(&mut self, out: &mut String, max_len: u64, filler: char, trim: bool) {
        let len = 3 + self.below(max_len - 3);
        let start = out.len();
        let mut bits = 0u64;
        for i in 0..len {
            if i % 2 == 0 {
                bits = self.next_u64();
            }
            let word = (bits >> (32 * (i % 2))) as u32;
            // low 16 bits: 1 in 13 is the filler; high 16 bits: the letter.
            if (u64::from(word & 0xffff) * 13) >> 16 == 0 {
                out.push(filler);
            } else {
                out.push((b'a' + ((u64::from(word >> 16) * 26) >> 16) as u8) as char);
            }
        }
        if trim {
            let end = out.trim_end().len().max(start);
            out.truncate(end);
            let lead = out[start..].len() - out[start..].trim_start().len();
            if lead > 0 {
                out.replace_range(start..start + lead, "");
            }
        }
    }
}

/// Channel names and urls of bids: the 4 hot channels then `channel-0..9999`,
/// built once with a fixed seed (the Java generator draws them per JVM).
pub(super) struct Channels {
    pub(super) names: Vec<String>,
    pub(super) urls: Vec<String>,
}

pub(super) fn channels() -> &'static Channels {
    static CHANNELS: OnceLock<Channels> = OnceLock::new();
    CHANNELS.get_or_init(|| {
        let mut rng = Rng(0x4e45_584d_4152_4b21);
        let base_url = |rng: &mut Rng| {
            let mut url = String::from("https://www.nexmark.com/");
            for _ in 0..3 {
                rng.push_string(&mut url, 5, '_', false);
                url.push('/');
            }
            url.push_str("item.htm?query=1");
            url
        };
        let mut names = Vec::with_capacity(HOT_CHANNELS.len() + CHANNELS_NUMBER);
        let mut urls = Vec::with_capacity(HOT_CHANNELS.len() + CHANNELS_NUMBER);
        for hot in HOT_CHANNELS {
            names.push(hot.to_string());
            urls.push(base_url(&mut rng));
        }
        for k in 0..CHANNELS_NUMBER {
            let mut url = base_url(&mut rng);
            if rng.below(10) > 0 {
                // Java: Math.abs(Integer.reverse(channelNumber)).
                let id = (k as i32).reverse_bits().wrapping_abs();
                url.push_str(&format!("&channel_id={id}"));
            }
            names.push(format!("channel-{k}"));
            urls.push(url);
        }
        Channels { names, urls }
    })
}
