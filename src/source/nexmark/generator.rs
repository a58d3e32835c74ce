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

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer};

pub use super::kind::{NexmarkKind, schema};
pub use super::mix::Proportions;
use super::values::{
    CHANNELS_NUMBER, FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_NAMES, FIRST_PERSON_ID,
    HOT_AUCTION_RATIO, HOT_BIDDERS_RATIO, HOT_BLOCK, HOT_CHANNELS, HOT_CHANNELS_RATIO,
    HOT_SELLERS_RATIO, LAST_NAMES, NUM_CATEGORIES, NUM_IN_FLIGHT_AUCTIONS, Rng, US_CITIES,
    US_STATES, channels, splitmix64,
};

/// Default events per second (the Java generator's `firstEventRate`).
pub const DEFAULT_RATE: u64 = 10_000;

/// Default maximum number of rows per generated `RecordBatch`.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

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
    /// at `base_ms`, emitting batches of at most 8192 rows
    /// ([`with_batch_rows`](Self::with_batch_rows) changes that).
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
