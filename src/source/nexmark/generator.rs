//! The pure Nexmark event generator behind the `nexmark` connector: person,
//! auction and bid events of one kind at a time, straight into Arrow columns.
//!
//! It follows the standard Nexmark generator (`GeneratorConfig`,
//! `PersonGenerator`, `AuctionGenerator`, `BidGenerator` of nexmark-flink /
//! Apache Beam): global events are numbered `n = 0, 1, 2, ...`; by default
//! in every cycle of 50 events position 0 is a person, positions 1..=3 are
//! auctions and the other 46 are bids (other mixes: [`Proportions`]). Ids start at 1000, auctions are sold by persons
//! already generated (or a few ids ahead, as in Java), bids mostly go to "hot"
//! auctions and come from "hot" bidders.
//!
//! Unlike the Java generator, every event's random values come from an RNG
//! seeded from `(seed, n)` only, so any range of events can be regenerated on
//! its own (replay after a crash) and `generate(0..100)` equals
//! `generate(0..50) ++ generate(50..100)`. Event `n` happens at
//! `base_ms + n * 1000 / rate`.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

pub use super::mix::Proportions;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Which Nexmark event type a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkKind {
    /// New users (`kind = 'person'`).
    Person,
    /// New auctions (`kind = 'auction'`).
    Auction,
    /// Bids on auctions (`kind = 'bid'`, the default).
    Bid,
}

impl NexmarkKind {
    /// The option value naming this kind.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkKind::Person => "person",
            NexmarkKind::Auction => "auction",
            NexmarkKind::Bid => "bid",
        }
    }

    /// Flink's `event_type` number of this kind: 0 person, 1 auction, 2 bid.
    pub fn event_type(self) -> i32 {
        match self {
            NexmarkKind::Person => 0,
            NexmarkKind::Auction => 1,
            NexmarkKind::Bid => 2,
        }
    }
}

impl FromStr for NexmarkKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "person" => Ok(NexmarkKind::Person),
            "auction" => Ok(NexmarkKind::Auction),
            "bid" => Ok(NexmarkKind::Bid),
            other => Err(format!(
                "unknown nexmark kind '{other}'; valid kinds are: person, auction, bid"
            )),
        }
    }
}

/// Default events per second (the Java generator's `firstEventRate`).
pub const DEFAULT_RATE: u64 = 10_000;

/// Default maximum number of rows per generated `RecordBatch`.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

// ---- Constants of the standard generator (GeneratorConfig / NexmarkConfiguration defaults).

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
/// `hotAuctionRatio`: P(bid on a hot auction) = 1 - 1/2.
const HOT_AUCTION_RATIO: u64 = 2;
/// `hotSellersRatio`: P(auction by a hot seller) = 1 - 1/4.
const HOT_SELLERS_RATIO: u64 = 4;
/// `hotBiddersRatio`: P(bid by a hot bidder) = 1 - 1/4.
const HOT_BIDDERS_RATIO: u64 = 4;
/// Hot auctions/sellers/bidders are the first of each block of this many ids.
const HOT_BLOCK: u64 = 100;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
const HOT_CHANNELS_RATIO: u64 = 2;
const CHANNELS_NUMBER: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
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
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// Standard Arrow schema of one event kind (Flink Nexmark column names).
pub fn schema(kind: NexmarkKind) -> SchemaRef {
    static SCHEMAS: OnceLock<[SchemaRef; 3]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let time = |name: &str| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            )
        };
        [
            Arc::new(Schema::new(vec![
                int("id"),
                text("name"),
                text("emailAddress"),
                text("creditCard"),
                text("city"),
                text("state"),
                time("dateTime"),
                text("extra"),
            ])),
            Arc::new(Schema::new(vec![
                int("id"),
                text("itemName"),
                text("description"),
                int("initialBid"),
                int("reserve"),
                time("dateTime"),
                time("expires"),
                int("seller"),
                int("category"),
                text("extra"),
            ])),
            Arc::new(Schema::new(vec![
                int("auction"),
                int("bidder"),
                int("price"),
                text("channel"),
                text("url"),
                time("dateTime"),
                text("extra"),
            ])),
        ]
    });
    match kind {
        NexmarkKind::Person => all[0].clone(),
        NexmarkKind::Auction => all[1].clone(),
        NexmarkKind::Bid => all[2].clone(),
    }
}

/// A wyrand generator, seeded per event from `(seed, n)`.
#[derive(Clone, Copy)]
struct Rng(u64);

/// The splitmix64 finalizer: a cheap, well-mixing 64-bit hash.
#[inline]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    #[inline]
    fn for_event(seed_mix: u64, n: u64) -> Self {
        Rng(splitmix64(seed_mix ^ n))
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0).wrapping_mul(u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db));
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, bound)` (Java's `nextInt(bound)` / `nextLong(bound)`).
    #[inline]
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `PriceGenerator.nextPrice`: `round(10^(u*6) * 100)`, log-uniform cents.
    #[inline]
    fn price(&mut self) -> i64 {
        ((self.next_f64() * (6.0 * std::f64::consts::LN_10)).exp() * 100.0).round() as i64
    }

    /// `PersonGenerator.nextBase0PersonId`: one of the active people or a few ahead.
    #[inline]
    fn base0_person_id(&mut self, last_person: u64) -> u64 {
        let num_people = last_person + 1;
        let active = num_people.min(NUM_ACTIVE_PEOPLE);
        num_people - active + self.below(active + PERSON_ID_LEAD)
    }

    /// `AuctionGenerator.nextBase0AuctionId`: an auction likely still in flight,
    /// or a few ahead.
    #[inline]
    fn base0_auction_id(&mut self, last_auction: i64) -> u64 {
        let max = last_auction.max(0) as u64;
        let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
        min + self.below(max - min + 1 + AUCTION_ID_LEAD)
    }

    /// `StringsGenerator.nextString`: 3..max_len-1 letters with the odd
    /// `filler` (space, trimmed away at the ends when `trim`).
    fn push_string(&mut self, out: &mut String, max_len: u64, filler: char, trim: bool) {
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
struct Channels {
    names: Vec<String>,
    urls: Vec<String>,
}

fn channels() -> &'static Channels {
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

/// `extra` column of `rows` empty strings (no bytes, all offsets 0).
fn empty_strings(rows: usize) -> ArrayRef {
    Arc::new(StringArray::new(
        OffsetBuffer::new_zeroed(rows),
        Buffer::from(Vec::<u8>::new()),
        None,
    ))
}

/// Event time of consecutive events without a division per event.
struct Clock {
    base_ms: i64,
    rate: u64,
    /// `n * 1000 / rate` and `n * 1000 % rate` of the current event.
    quot: u64,
    rem: u64,
    step_quot: u64,
    step_rem: u64,
}

impl Clock {
    fn new(base_ms: i64, rate: u64, n: u64) -> Self {
        let scaled = u128::from(n) * 1000;
        Clock {
            base_ms,
            rate,
            quot: (scaled / u128::from(rate)) as u64,
            rem: (scaled % u128::from(rate)) as u64,
            step_quot: 1000 / rate,
            step_rem: 1000 % rate,
        }
    }

    #[inline]
    fn now(&self) -> i64 {
        self.base_ms.wrapping_add(self.quot as i64)
    }

    #[inline]
    fn advance(&mut self) {
        self.quot += self.step_quot;
        self.rem += self.step_rem;
        if self.rem >= self.rate {
            self.rem -= self.rate;
            self.quot += 1;
        }
    }
}

/// Pure deterministic Nexmark event generator, usable by benchmarks and tests.
#[derive(Debug, Clone)]
pub struct NexmarkGenerator {
    seed: u64,
    seed_mix: u64,
    pub(super) rate: u64,
    pub(super) base_ms: i64,
    batch_rows: usize,
    mix: Proportions,
    out_of_order_group: u64,
}

impl NexmarkGenerator {
    /// A generator of `rate` events/s (0 is taken as 1) whose event 0 happens
    /// at `base_ms`, emitting batches of at most [`DEFAULT_BATCH_ROWS`] rows.
    pub fn new(seed: u64, rate: u64, base_ms: i64) -> Self {
        NexmarkGenerator {
            seed,
            seed_mix: splitmix64(seed ^ 0x6e65_786d_6172_6b00),
            rate: rate.max(1),
            base_ms,
            batch_rows: DEFAULT_BATCH_ROWS,
            mix: Proportions::default(),
            out_of_order_group: 1,
        }
    }

    /// The same generator with event times shuffled within groups of
    /// `group` consecutive events (Beam/Flink Nexmark's
    /// `outOfOrderGroupSize`; 1, the default, keeps them in order): event `n`
    /// gets the time of event `n - n % group + (n * 953) % group`, so rows
    /// arrive up to `group / rate` seconds out of order.
    pub fn with_out_of_order_group(mut self, group: u64) -> Self {
        self.out_of_order_group = group.max(1);
        self
    }

    /// The same generator with another event mix (default 1 : 3 : 46).
    pub fn with_proportions(mut self, mix: Proportions) -> Self {
        self.mix = mix;
        self
    }

    /// The event mix: which global events are persons, auctions and bids.
    pub fn proportions(&self) -> Proportions {
        self.mix
    }

    /// The same generator emitting batches of at most `rows` rows (at least 1).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The seed the generator was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Timestamp (ms) of global event n as emitted: its own time, or with
    /// out-of-order groups the time of another event of its group.
    pub fn emitted_time_ms(&self, n: u64) -> i64 {
        let group = self.out_of_order_group;
        if group <= 1 {
            return self.event_time_ms(n);
        }
        let adjusted = n - n % group + n.wrapping_mul(953) % group;
        self.event_time_ms(adjusted)
    }

    /// Timestamp (ms) of global event n in arrival order.
    pub fn event_time_ms(&self, n: u64) -> i64 {
        let offset = u128::from(n) * 1000 / u128::from(self.rate);
        self.base_ms.wrapping_add(offset as i64)
    }

    /// Rows of `kind` among global events [from, to), as one or more record
    /// batches of at most `batch_rows` rows (none when the range holds no such event).
    pub fn generate(&self, kind: NexmarkKind, from: u64, to: u64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        if to <= from {
            return out;
        }
        let total = self.mix.count_before(kind, to) - self.mix.count_before(kind, from);
        let mut remaining = total as usize;
        let mut n = from;
        while remaining > 0 {
            let rows = remaining.min(self.batch_rows);
            let (batch, next) = match kind {
                NexmarkKind::Person => self.persons(n, rows),
                NexmarkKind::Auction => self.auctions(n, rows),
                NexmarkKind::Bid => self.bids(n, rows),
            };
            out.push(batch);
            n = next;
            remaining -= rows;
        }
        out
    }

    /// Exactly `rows` bids from event `n` on; returns the batch and the event after the last bid.
    fn bids(&self, mut n: u64, rows: usize) -> (RecordBatch, u64) {
        let chans = channels();
        let mut auction = Vec::with_capacity(rows);
        let mut bidder = Vec::with_capacity(rows);
        let mut price = Vec::with_capacity(rows);
        let mut date_time = Vec::with_capacity(rows);
        let mut channel = StringBuilder::with_capacity(rows, rows * 8);
        let mut url = StringBuilder::with_capacity(rows, rows * 72);
        let mut clock = Clock::new(self.base_ms, self.rate, n);
        let in_order = self.out_of_order_group <= 1;
        let mix = self.mix;
        let cycle = mix.total();
        let mut epoch = n / cycle;
        let mut offset = n % cycle;
        let first_bid = mix.person + mix.auction;
        while auction.len() < rows {
            if offset >= first_bid {
                let mut rng = Rng::for_event(self.seed_mix, n);
                let last_auction = epoch * mix.auction + mix.auction - 1;
                let last_person = epoch * mix.person + mix.person - 1;
                let a = if rng.below(HOT_AUCTION_RATIO) > 0 {
                    (last_auction / HOT_BLOCK) * HOT_BLOCK
                } else {
                    rng.base0_auction_id(last_auction as i64)
                };
                let b = if rng.below(HOT_BIDDERS_RATIO) > 0 {
                    (last_person / HOT_BLOCK) * HOT_BLOCK + 1
                } else {
                    rng.base0_person_id(last_person)
                };
                auction.push(a as i64 + FIRST_AUCTION_ID);
                bidder.push(b as i64 + FIRST_PERSON_ID);
                price.push(rng.price());
                let c = if rng.below(HOT_CHANNELS_RATIO) > 0 {
                    rng.below(HOT_CHANNELS.len() as u64) as usize
                } else {
                    HOT_CHANNELS.len() + rng.below(CHANNELS_NUMBER as u64) as usize
                };
                channel.append_value(&chans.names[c]);
                url.append_value(&chans.urls[c]);
                date_time.push(if in_order {
                    clock.now()
                } else {
                    self.emitted_time_ms(n)
                });
            }
            n += 1;
            offset += 1;
            if offset == cycle {
                offset = 0;
                epoch += 1;
            }
            clock.advance();
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(auction)),
            Arc::new(Int64Array::from(bidder)),
            Arc::new(Int64Array::from(price)),
            Arc::new(channel.finish()),
            Arc::new(url.finish()),
            Arc::new(TimestampMillisecondArray::from(date_time)),
            empty_strings(rows),
        ];
        (batch(NexmarkKind::Bid, columns, rows), n)
    }

    /// Exactly `rows` auctions from event `n` on; returns the batch and the event after the last one.
    fn auctions(&self, mut n: u64, rows: usize) -> (RecordBatch, u64) {
        let mut id = Vec::with_capacity(rows);
        let mut item_name = StringBuilder::with_capacity(rows, rows * 12);
        let mut description = StringBuilder::with_capacity(rows, rows * 52);
        let mut initial_bid = Vec::with_capacity(rows);
        let mut reserve = Vec::with_capacity(rows);
        let mut date_time = Vec::with_capacity(rows);
        let mut expires = Vec::with_capacity(rows);
        let mut seller = Vec::with_capacity(rows);
        let mut category = Vec::with_capacity(rows);
        let mut text = String::with_capacity(128);
        // Events it takes to generate NUM_IN_FLIGHT_AUCTIONS more auctions.
        let mix = self.mix;
        let cycle = mix.total();
        let events_for_auctions = NUM_IN_FLIGHT_AUCTIONS * cycle / mix.auction;
        let (start, end) = mix.cycle_range(NexmarkKind::Auction);
        while id.len() < rows {
            let offset = n % cycle;
            if offset < start {
                n += start - offset;
            } else if offset >= end {
                n += cycle - offset + start;
            }
            let mut rng = Rng::for_event(self.seed_mix, n);
            let timestamp = self.emitted_time_ms(n);
            let last_person = mix.last_base0_person_id(n);
            id.push(mix.last_base0_auction_id(n) + FIRST_AUCTION_ID);
            let s = if rng.below(HOT_SELLERS_RATIO) > 0 {
                (last_person / HOT_BLOCK) * HOT_BLOCK
            } else {
                rng.base0_person_id(last_person)
            };
            seller.push(s as i64 + FIRST_PERSON_ID);
            category.push(FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64);
            let bid = rng.price();
            initial_bid.push(bid);
            let horizon = self.event_time_ms(n + events_for_auctions) - timestamp;
            let length = 1 + rng.below(horizon.saturating_mul(2).max(1) as u64) as i64;
            date_time.push(timestamp);
            expires.push(timestamp + length);
            text.clear();
            rng.push_string(&mut text, 20, ' ', true);
            item_name.append_value(&text);
            text.clear();
            rng.push_string(&mut text, 100, ' ', true);
            description.append_value(&text);
            reserve.push(bid + rng.price());
            n += 1;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(item_name.finish()),
            Arc::new(description.finish()),
            Arc::new(Int64Array::from(initial_bid)),
            Arc::new(Int64Array::from(reserve)),
            Arc::new(TimestampMillisecondArray::from(date_time)),
            Arc::new(TimestampMillisecondArray::from(expires)),
            Arc::new(Int64Array::from(seller)),
            Arc::new(Int64Array::from(category)),
            empty_strings(rows),
        ];
        (batch(NexmarkKind::Auction, columns, rows), n)
    }

    /// Exactly `rows` persons from event `n` on; returns the batch and the event after the last one.
    fn persons(&self, mut n: u64, rows: usize) -> (RecordBatch, u64) {
        let mut id = Vec::with_capacity(rows);
        let mut name = StringBuilder::with_capacity(rows, rows * 12);
        let mut email = StringBuilder::with_capacity(rows, rows * 16);
        let mut credit_card = StringBuilder::with_capacity(rows, rows * 19);
        let mut city = StringBuilder::with_capacity(rows, rows * 8);
        let mut state = StringBuilder::with_capacity(rows, rows * 2);
        let mut date_time = Vec::with_capacity(rows);
        let mut text = String::with_capacity(32);
        let mix = self.mix;
        let cycle = mix.total();
        while id.len() < rows {
            let offset = n % cycle;
            if offset >= mix.person {
                n += cycle - offset;
            }
            let mut rng = Rng::for_event(self.seed_mix, n);
            id.push(mix.last_base0_person_id(n) as i64 + FIRST_PERSON_ID);
            text.clear();
            text.push_str(FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize]);
            text.push(' ');
            text.push_str(LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize]);
            name.append_value(&text);
            text.clear();
            rng.push_string(&mut text, 7, ' ', true);
            text.push('@');
            rng.push_string(&mut text, 5, ' ', true);
            text.push_str(".com");
            email.append_value(&text);
            text.clear();
            for group in 0..4 {
                if group > 0 {
                    text.push(' ');
                }
                let mut digits = rng.below(10_000);
                let mut buf = [b'0'; 4];
                for d in buf.iter_mut().rev() {
                    *d = b'0' + (digits % 10) as u8;
                    digits /= 10;
                }
                buf.iter().for_each(|&d| text.push(d as char));
            }
            credit_card.append_value(&text);
            city.append_value(US_CITIES[rng.below(US_CITIES.len() as u64) as usize]);
            state.append_value(US_STATES[rng.below(US_STATES.len() as u64) as usize]);
            date_time.push(self.emitted_time_ms(n));
            n += 1;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(name.finish()),
            Arc::new(email.finish()),
            Arc::new(credit_card.finish()),
            Arc::new(city.finish()),
            Arc::new(state.finish()),
            Arc::new(TimestampMillisecondArray::from(date_time)),
            empty_strings(rows),
        ];
        (batch(NexmarkKind::Person, columns, rows), n)
    }
}

/// Assembles generated columns; they match the standard schema by construction.
fn batch(kind: NexmarkKind, columns: Vec<ArrayRef>, rows: usize) -> RecordBatch {
    match RecordBatch::try_new(schema(kind), columns) {
        Ok(batch) => batch,
        Err(e) => panic!(
            "nexmark {} columns do not match their schema ({rows} rows): {e}",
            kind.name()
        ),
    }
}

#[cfg(test)]
#[path = "generator_tests.rs"]
mod tests;
