//! The three Nexmark event kinds and their standard Arrow schemas (Flink
//! Nexmark column names): what the generator produces and the event mix
//! ([`super::mix`]) counts.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

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
