//! The `WITH (...)` options of a `nexmark` stream, parsed and validated once:
//! quiver's own names (`kind`, `seed`, `events`, `rate`, `batch_rows`,
//! `partitions`, `out_of_order_group`) and
//! nexmark-flink's (`events.num`, `first-event.rate`, `next-event.rate`,
//! `*.proportion`, `keep-alive`, `stop-at`, `max-emit-speed`).

use std::str::FromStr;

use datafusion::arrow::datatypes::Schema;

use super::flink::looks_combined;
use super::generator::{DEFAULT_BATCH_ROWS, DEFAULT_RATE, NexmarkKind};
use super::mix::{MAX_PROPORTION, Proportions};
use crate::options::{OptionError, Options};

/// Options the `nexmark` connector understands.
pub const KEYS: &[&str] = &[
    "kind",
    "seed",
    "events",
    "rate",
    "batch_rows",
    "events.num",
    "first-event.rate",
    "next-event.rate",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "keep-alive",
    "stop-at",
    "max-emit-speed",
    "partitions",
    "out_of_order_group",
    "out-of-order-group-size",
];

/// Largest `partitions` accepted.
pub const MAX_PARTITIONS: u32 = 1024;

/// What a nexmark stream emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only events of one kind, with that kind's flat columns.
    Kind(NexmarkKind),
    /// All events, Flink's `event_type, person, auction, bid` form.
    Combined,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Mode::Combined),
            "person" => Ok(Mode::Kind(NexmarkKind::Person)),
            "auction" => Ok(Mode::Kind(NexmarkKind::Auction)),
            "bid" => Ok(Mode::Kind(NexmarkKind::Bid)),
            other => Err(format!(
                "unknown nexmark kind '{other}'; valid kinds are: person, auction, bid, all \
                 (all events as event_type, person, auction, bid)"
            )),
        }
    }
}

/// Parsed `WITH (...)` options of a nexmark stream.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `kind`; without it, combined when the declared columns are in
    /// Flink's form, otherwise bids.
    pub mode: Mode,
    /// `seed`: the same seed gives the same events.
    pub seed: u64,
    /// `events` / `events.num` (or a smaller `stop-at`): total events,
    /// `None` for unbounded.
    pub events: Option<u64>,
    /// `rate` / `first-event.rate` / `next-event.rate`: events per second.
    pub rate: u64,
    /// `batch_rows`: maximum rows per `RecordBatch`.
    pub batch_rows: usize,
    /// `keep-alive`: never report the stream drained, even after `events`.
    pub keep_alive: bool,
    /// `person.proportion`, `auction.proportion`, `bid.proportion`.
    pub mix: Proportions,
    /// `partitions`: source partitions the events are split over (event `n`
    /// goes to partition `n % partitions`), each with its own watermark;
    /// like the parallelism of Flink's nexmark source.
    pub partitions: u32,
    /// `out_of_order_group` / `out-of-order-group-size`: event times are
    /// shuffled within groups of this many events (1: in order).
    pub out_of_order_group: u64,
}

impl Settings {
    /// Parses `options`; `declared` (the declared columns, if any) picks the
    /// mode when there is no `kind` option.
    pub fn parse(options: &Options, declared: Option<&Schema>) -> Result<Self, OptionError> {
        options.check_keys("nexmark", KEYS)?;
        let mode = match options.parse_opt::<Mode>("kind")? {
            Some(mode) => mode,
            None if declared.is_some_and(looks_combined) => Mode::Combined,
            None => Mode::Kind(NexmarkKind::Bid),
        };
        let seed = options.parse_or("seed", 0u64)?;
        let events = aliased(options, &["events", "events.num"], 0u64)?;
        let rate = aliased(options, &["rate", "first-event.rate"], DEFAULT_RATE)?;
        if rate == 0 {
            let key = if options.get("rate").is_some() {
                "rate"
            } else {
                "first-event.rate"
            };
            return Err(options.invalid(key, "the event rate must be > 0 events/s"));
        }
        if let Some(next) = options.parse_opt::<u64>("next-event.rate")?
            && next != rate
        {
            return Err(options.invalid(
                "next-event.rate",
                format!(
                    "the generator keeps one constant rate; set it equal to first-event.rate ({rate})"
                ),
            ));
        }
        let standard = Proportions::default();
        let person = options.parse_or("person.proportion", standard.person)?;
        let auction = options.parse_or("auction.proportion", standard.auction)?;
        let bid = options.parse_or("bid.proportion", standard.bid)?;
        let Some(mix) = Proportions::new(person, auction, bid) else {
            let key = [
                ("person.proportion", person),
                ("auction.proportion", auction),
                ("bid.proportion", bid),
            ]
            .into_iter()
            .find(|(_, p)| !(1..=MAX_PROPORTION).contains(p))
            .map_or("bid.proportion", |(key, _)| key);
            return Err(options.invalid(
                key,
                format!(
                    "every proportion must be between 1 and {MAX_PROPORTION} (the standard mix is 1 : 3 : 46)"
                ),
            ));
        };
        let batch_rows = options.parse_or("batch_rows", DEFAULT_BATCH_ROWS)?;
        if batch_rows == 0 {
            return Err(options.invalid("batch_rows", "must be > 0"));
        }
        let keep_alive = flag(options, "keep-alive")?;
        let partitions = options.parse_or("partitions", 1u32)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(options.invalid(
                "partitions",
                format!("must be between 1 and {MAX_PARTITIONS}"),
            ));
        }
        let out_of_order_group = aliased(
            options,
            &["out_of_order_group", "out-of-order-group-size"],
            1u64,
        )?;
        if out_of_order_group == 0 {
            let key = if options.get("out_of_order_group").is_some() {
                "out_of_order_group"
            } else {
                "out-of-order-group-size"
            };
            return Err(options.invalid(key, "must be at least 1 (1: events in order)"));
        }
        // Accepted for nexmark-flink DDL compatibility, without effect: event
        // times follow the rate, and a batch emits the events before its time
        // at once, never paced by the wall clock.
        flag(options, "max-emit-speed")?;
        // nexmark-flink: stop at this event id (-1: never). Events before it
        // are emitted, then the stream is drained like after `events`.
        let stop_at = options.parse_or("stop-at", -1i64)?;
        if stop_at < -1 {
            return Err(options.invalid("stop-at", "must be an event id >= 0, or -1 for no stop"));
        }
        let mut events = (events > 0).then_some(events);
        if let Ok(stop) = u64::try_from(stop_at) {
            events = Some(events.map_or(stop, |e| e.min(stop)));
        }
        Ok(Settings {
            mode,
            seed,
            events,
            rate,
            batch_rows,
            keep_alive,
            mix,
            partitions,
            out_of_order_group,
        })
    }
}

/// The value of whichever of the equivalent `keys` are given (they must agree).
fn aliased<T>(options: &Options, keys: &[&str], default: T) -> Result<T, OptionError>
where
    T: FromStr + PartialEq + Copy + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let mut found: Option<(&str, T)> = None;
    for key in keys {
        if let Some(value) = options.parse_opt::<T>(key)? {
            match found {
                Some((first, seen)) if seen != value => {
                    return Err(options.invalid(
                        key,
                        format!("it conflicts with '{first}' = '{seen}'; give only one of them"),
                    ));
                }
                _ => found = Some((key, value)),
            }
        }
    }
    Ok(found.map_or(default, |(_, value)| value))
}

/// A `true`/`false` option (case-insensitive), false when absent.
fn flag(options: &Options, key: &str) -> Result<bool, OptionError> {
    match options.get(key).map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(options.invalid(key, "expected 'true' or 'false'")),
    }
}
