//! `EXPLAIN`'s streaming part: a continuous query's plan in words — its
//! batch interval, then its inputs (windows, kept rows, per-batch streams)
//! and watermarks. DataFusion's plans of the per-batch query follow it
//! ([`StreamingPlan::explain`]).

use std::fmt;
use std::time::Duration;

use super::{StreamingPlan, TimeDomain};

impl fmt::Display for StreamingPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let interval = Duration::from_millis(self.interval_ms.max(0) as u64);
        let domain = match self.time {
            Some(TimeDomain::Event) => "event time",
            _ => "processing time",
        };
        let mut inputs: Vec<String> = Vec::new();
        if let Some(w) = self.window() {
            for (i, input) in self.windows().iter().enumerate() {
                let incremental = self.partials().iter().any(|p| p.window == i);
                let state = match (incremental, input.keeps_rows) {
                    (false, _) => "",
                    (true, true) => ", aggregated from partials per pane, rows kept too",
                    (true, false) => ", aggregated from partials per pane",
                };
                inputs.push(format!(
                    "{} window over {} (size {} ms, slide {} ms, {domain}{state})",
                    format!("{:?}", w.kind).to_uppercase(),
                    input.relation,
                    w.size_ms,
                    w.slide_ms
                ));
            }
            for input in self.kept() {
                inputs.push(format!("{} rows kept for open windows", input.relation));
            }
        } else if let Some(session) = self.session() {
            inputs.push(format!(
                "SESSION window over {} (gap {} ms, {domain}), rows kept until their session closes",
                session.input.relation, session.gap_ms
            ));
        } else {
            for (stream, _) in &self.streams {
                inputs.push(format!("{} per batch", stream.name));
            }
        }
        for w in &self.watermarks {
            inputs.push(format!(
                "watermark of {}: max({}) so far",
                w.stream, w.def.expr
            ));
        }
        write!(
            f,
            "continuous query, batch_interval {}\ninputs: {}",
            humantime::format_duration(interval),
            inputs.join("; ")
        )
    }
}
