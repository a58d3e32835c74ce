//! Broker outages while a query runs: the kafka source keeps going instead
//! of failing. librdkafka itself reconnects and, once the broker is back,
//! fetches on from the position it had (the assignment and the positions
//! live in the client, not on the broker); what quiver adds is a status
//! line and holding on to the offsets it could not commit.
//!
//! An outage starts when librdkafka reports a transport error (its error
//! callback, or a fetch error) or when a commit fails. It is confirmed by a
//! probe (a metadata request) so a single dropped connection that
//! librdkafka reopens at once is not reported. While it lasts, the probe is
//! repeated with exponential backoff and each failed probe reports
//! `kafka: 127.0.0.1:9092 unreachable, retrying (12 s)` through `tracing`
//! (shown as a warning on stderr or above the REPL prompt); the first probe
//! that succeeds ends it (`... reachable again after 14 s`) and the
//! offsets held back are committed then.
//!
//! A broker that does not answer when the query *starts* is one clear
//! error within option `timeout` (a wrong address is far more likely then
//! than an outage), unless option `startup.retry` asks to keep trying: then
//! the same status line and backoff apply (see `super::connect`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::options::CONNECTOR;

/// First wait between two probes of an unreachable broker.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Longest wait between two probes.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Longest a probe waits for the broker's answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Transport trouble reported from librdkafka's threads (its error
/// callback), picked up by the polling thread.
#[derive(Debug, Clone, Default)]
pub struct Signal(Arc<Mutex<Option<String>>>);

impl Signal {
    /// Records that the broker may be unreachable, and why.
    pub fn raise(&self, reason: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// True for errors that mean "the broker cannot be reached right now"
/// (librdkafka retries them), as opposed to errors that will not go away.
pub fn is_transport(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::WaitingForCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
        )
    )
}

/// Where the source stands with its broker.
#[derive(Debug)]
pub struct Outage {
    bootstrap: String,
    signal: Signal,
    /// Since when the broker is (possibly) unreachable, and why.
    down: Option<Down>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    reason: String,
    /// Confirmed by a failed probe (and reported).
    confirmed: bool,
    next_probe: Instant,
    backoff: Duration,
}

/// What [`Outage::due`] asks the consumer to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// The broker is reachable as far as we know.
    Up,
    /// Probe the broker now and report with [`Outage::probed`].
    Probe,
    /// Unreachable; wait for the next probe.
    Wait,
}

impl Outage {
    /// No outage, for the broker at `bootstrap`; `signal` is shared with
    /// the client's error callback.
    pub fn new(bootstrap: &str, signal: Signal) -> Self {
        Self {
            bootstrap: bootstrap.to_string(),
            signal,
            down: None,
        }
    }

    /// Notes transport trouble (a fetch or commit error): an outage starts
    /// unless one is on already; it is confirmed by the next probe.
    pub fn suspect(&mut self, reason: String) {
        let now = Instant::now();
        match &mut self.down {
            Some(down) => down.reason = reason,
            None => {
                self.down = Some(Down {
                    since: now,
                    reason,
                    confirmed: false,
                    next_probe: now,
                    backoff: FIRST_BACKOFF,
                })
            }
        }
    }

    /// What to do now: picks up what the error callback reported.
    pub fn due(&mut self) -> Due {
        if let Some(reason) = self.signal.take() {
            self.suspect(reason);
        }
        match &self.down {
            None => Due::Up,
            Some(down) if Instant::now() >= down.next_probe => Due::Probe,
            Some(_) => Due::Wait,
        }
    }

    /// True while the broker is (possibly) unreachable.
    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }

    /// Takes the result of a probe: success ends the outage (reported if it
    /// had been), failure reports the status and backs off.
    pub fn probed(&mut self, result: Result<(), String>) {
        let Some(down) = &mut self.down else {
            return;
        };
        let elapsed = down.since.elapsed().as_secs();
        match result {
            Ok(()) => {
                if down.confirmed {
                    tracing::warn!(
                        "{CONNECTOR}: {} reachable again after {elapsed} s; resuming where the query was",
                        self.bootstrap
                    );
                }
                self.down = None;
            }
            Err(reason) => {
                if !down.confirmed {
                    down.reason = reason;
                }
                down.confirmed = true;
                tracing::warn!(
                    "{CONNECTOR}: {} unreachable, retrying ({elapsed} s): {}",
                    self.bootstrap,
                    down.reason
                );
                down.next_probe = Instant::now() + down.backoff;
                down.backoff = (down.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_confirmed_by_a_probe_backs_off_and_ends_on_success() {
        let signal = Signal::default();
        let mut outage = Outage::new("b:1", signal.clone());
        assert_eq!(outage.due(), Due::Up);
        signal.raise("transport failure".into());
        assert_eq!(outage.due(), Due::Probe);
        outage.probed(Err("timed out".into()));
        assert!(outage.is_down());
        assert_eq!(outage.due(), Due::Wait);
        std::thread::sleep(FIRST_BACKOFF);
        assert_eq!(outage.due(), Due::Probe);
        outage.probed(Ok(()));
        assert!(!outage.is_down());
        assert_eq!(outage.due(), Due::Up);
    }

    #[test]
    fn transport_errors_are_told_from_permanent_ones() {
        use rdkafka::error::KafkaError::MessageConsumption;
        assert!(is_transport(&MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!is_transport(&MessageConsumption(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
    }
}
