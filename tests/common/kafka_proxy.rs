//! A Kafka endpoint with TLS and SASL/PLAIN in front of librdkafka's mock
//! cluster (which speaks neither), for the security tests: a proxy that
//! terminates TLS (the test CA's server certificate in `tests/data/tls/`,
//! optionally requiring a client certificate signed by that CA) and, with
//! SASL, answers `SaslHandshake` / `SaslAuthenticate` itself (PLAIN against
//! one username and password) and adds them to the mock's `ApiVersions`
//! answer; every other request goes on to the mock broker unchanged. The
//! mock broker is told to advertise the proxy's address in its metadata, so
//! a client never reaches the mock except through the proxy.
//!
//! The proxy counts the TLS handshakes and SASL authentications it
//! completed, so a test can prove the client really spoke TLS / SASL.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use rdkafka::ClientConfig;
use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer};

/// A file of the test CA's directory.
pub fn tls_file(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", "tls", name]
        .iter()
        .collect();
    path.to_string_lossy().into_owned()
}

/// librdkafka's mock cluster with one broker, made through the C API so
/// the broker's advertised address can be changed (rdkafka's `MockCluster`
/// does not expose it).
pub struct Mock {
    /// The client that owns the cluster (never connects anywhere).
    _owner: BaseProducer,
    cluster: *mut rd::rd_kafka_mock_cluster_t,
    /// The mock broker's own (plaintext) address.
    pub address: String,
}

// The mock cluster is thread-safe (its own thread and lock).
unsafe impl Send for Mock {}
unsafe impl Sync for Mock {}

impl Mock {
    /// A one-broker mock cluster.
    pub fn new() -> Self {
        let owner: BaseProducer = ClientConfig::new().create().expect("owner client");
        let cluster = unsafe { rd::rd_kafka_mock_cluster_new(owner.client().native_ptr(), 1) };
        assert!(!cluster.is_null(), "mock cluster");
        let address = unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(cluster)) }
            .to_string_lossy()
            .into_owned();
        Self {
            _owner: owner,
            cluster,
            address,
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let name = CString::new(topic).unwrap();
        let err =
            unsafe { rd::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, 1) };
        assert_eq!(
            err,
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            "create {topic}"
        );
    }

    /// Makes the broker's metadata name `127.0.0.1:port` as its address.
    pub fn advertise(&self, port: u16) {
        let host = CString::new("127.0.0.1").unwrap();
        unsafe {
            rd::rd_kafka_mock_broker_set_host_port(self.cluster, 1, host.as_ptr(), i32::from(port))
        };
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_mock_cluster_destroy(self.cluster) };
    }
}

/// What the proxy asks of its clients.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS with the test CA's server certificate.
    pub tls: bool,
    /// With `tls`: a client certificate signed by the test CA is required.
    pub client_cert: bool,
    /// SASL/PLAIN with this username and password.
    pub plain: Option<(String, String)>,
}

/// What the proxy saw.
#[derive(Default)]
pub struct Stats {
    /// TLS handshakes completed.
    pub tls_sessions: AtomicUsize,
    /// TLS handshakes that failed (a client that does not trust the
    /// certificate, or speaks plaintext).
    pub tls_failures: AtomicUsize,
    /// SASL authentications that succeeded.
    pub authenticated: AtomicUsize,
    /// SASL authentications refused (wrong username or password).
    pub refused: AtomicUsize,
    /// Bumped by [`Proxy::cut`]: connections of an older generation close.
    generation: AtomicUsize,
    /// Set by [`Proxy::cut`]: every password is refused from then on.
    refuse_all: std::sync::atomic::AtomicBool,
}

/// A proxy listening on `127.0.0.1:port`.
pub struct Proxy {
    pub port: u16,
    pub stats: Arc<Stats>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, security: Security) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Stats::default());
        let acceptor = security
            .tls
            .then(|| Arc::new(acceptor(security.client_cert)));
        let upstream = upstream.to_string();
        let shared = stats.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (upstream, acceptor, plain, stats) = (
                    upstream.clone(),
                    acceptor.clone(),
                    security.plain.clone(),
                    shared.clone(),
                );
                std::thread::spawn(move || serve(client, &upstream, acceptor, plain, &stats));
            }
        });
        Self { port, stats }
    }

    /// Closes every open connection and, with `refuse_all`, refuses every
    /// later authentication (a password revoked while a query runs).
    pub fn cut(&self, refuse_all: bool) {
        self.stats.refuse_all.store(refuse_all, Ordering::SeqCst);
        self.stats.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn acceptor(client_cert: bool) -> SslAcceptor {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    builder
        .set_private_key_file(tls_file("server.key"), SslFiletype::PEM)
        .unwrap();
    builder
        .set_certificate_chain_file(tls_file("server.pem"))
        .unwrap();
    if client_cert {
        builder.set_ca_file(tls_file("ca.pem")).unwrap();
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    builder.build()
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

const API_SASL_HANDSHAKE: i16 = 17;
const API_VERSIONS: i16 = 18;
const API_SASL_AUTHENTICATE: i16 = 36;

/// One client connection: TLS handshake if asked, then frames both ways.
fn serve(
    client: TcpStream,
    upstream: &str,
    acceptor: Option<Arc<SslAcceptor>>,
    plain: Option<(String, String)>,
    stats: &Stats,
) {
    let generation = stats.generation.load(Ordering::SeqCst);
    let Ok(mut broker) = TcpStream::connect(upstream) else {
        return;
    };
    let tick = Some(Duration::from_millis(5));
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut client: Box<dyn Stream> = match acceptor {
        Some(acceptor) => match acceptor.accept(client) {
            Ok(stream) => {
                stats.tls_sessions.fetch_add(1, Ordering::SeqCst);
                let _ = stream.get_ref().set_read_timeout(tick);
                Box::new(stream)
            }
            Err(_) => {
                stats.tls_failures.fetch_add(1, Ordering::SeqCst);
                return;
            }
        },
        None => {
            let _ = client.set_read_timeout(tick);
            Box::new(client)
        }
    };
    let _ = broker.set_read_timeout(tick);
    let mut authenticated = plain.is_none();
    // ApiVersions requests in flight: correlation id -> request version.
    let mut versions: HashMap<i32, i16> = HashMap::new();
    let (mut from_client, mut from_broker) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stats.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if !fill(&mut client, &mut buf, &mut from_client) {
            return;
        }
        while let Some(frame) = take_frame(&mut from_client) {
            let api = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let reply = match (&plain, api) {
                (Some(_), API_SASL_HANDSHAKE) => Some(handshake(&frame, correlation)),
                (Some((user, password)), API_SASL_AUTHENTICATE) => {
                    let refuse_all = stats.refuse_all.load(Ordering::SeqCst);
                    let (ok, reply) = authenticate(&frame, version, correlation, user, password);
                    let (ok, reply) = match refuse_all {
                        false => (ok, reply),
                        true => authenticate(&frame, version, correlation, user, "\0revoked"),
                    };
                    let counter = if ok {
                        &stats.authenticated
                    } else {
                        &stats.refused
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    authenticated = ok;
                    Some(reply)
                }
                (_, API_VERSIONS) => {
                    versions.insert(correlation, version);
                    None
                }
                // A real broker closes a connection that skips SASL.
                _ if !authenticated => return,
                _ => None,
            };
            let sent = match reply {
                Some(reply) => write_frame(&mut client, &reply),
                None => write_frame(&mut broker, &frame),
            };
            if sent.is_err() {
                return;
            }
        }
        if !fill(&mut broker, &mut buf, &mut from_broker) {
            return;
        }
        while let Some(mut frame) = take_frame(&mut from_broker) {
            let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if let Some(version) = versions.remove(&correlation)
                && plain.is_some()
            {
                frame = with_sasl_apis(&frame, version);
            }
            if write_frame(&mut client, &frame).is_err() {
                return;
            }
        }
    }
}

/// Reads what is there (waiting at most the read timeout); false once the
/// peer closed or failed.
fn fill(stream: &mut dyn Read, buf: &mut [u8], into: &mut Vec<u8>) -> bool {
    match stream.read(buf) {
        Ok(0) => false,
        Ok(n) => {
            into.extend_from_slice(&buf[..n]);
            true
        }
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// The next complete frame's body (its 4-byte length removed), if any.
fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    let frame = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Some(frame)
}

fn write_frame(stream: &mut dyn Write, body: &[u8]) -> std::io::Result<()> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

/// The offset of a request's body: after api key, version, correlation id
/// and the (nullable, int16-length) client id of request header v1.
fn body_offset(frame: &[u8]) -> usize {
    let len = i16::from_be_bytes([frame[8], frame[9]]);
    10 + usize::try_from(len).unwrap_or(0)
}

/// `SaslHandshake` (v0/v1): PLAIN is the one mechanism.
fn handshake(frame: &[u8], correlation: i32) -> Vec<u8> {
    let at = body_offset(frame);
    let len = i16::from_be_bytes([frame[at], frame[at + 1]]) as usize;
    let mechanism = &frame[at + 2..at + 2 + len];
    let error: i16 = if mechanism == b"PLAIN" { 0 } else { 33 }; // UNSUPPORTED_SASL_MECHANISM
    let mut out = correlation.to_be_bytes().to_vec();
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&5i16.to_be_bytes());
    out.extend_from_slice(b"PLAIN");
    out
}

/// `SaslAuthenticate` (v0/v1) with PLAIN's `authzid NUL user NUL password`:
/// whether it matched, and the answer (Kafka's wording when it did not).
fn authenticate(
    frame: &[u8],
    version: i16,
    correlation: i32,
    user: &str,
    password: &str,
) -> (bool, Vec<u8>) {
    let at = body_offset(frame);
    let len = i32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let bytes = &frame[at + 4..at + 4 + len.max(0) as usize];
    let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let ok = parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == password.as_bytes();
    let mut out = correlation.to_be_bytes().to_vec();
    if ok {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&(-1i16).to_be_bytes());
    } else {
        let message = b"Authentication failed: Invalid username or password";
        out.extend_from_slice(&58i16.to_be_bytes()); // SASL_AUTHENTICATION_FAILED
        out.extend_from_slice(&(message.len() as i16).to_be_bytes());
        out.extend_from_slice(message);
    }
    out.extend_from_slice(&0i32.to_be_bytes()); // no auth bytes back
    if version >= 1 {
        out.extend_from_slice(&0i64.to_be_bytes()); // session lifetime: none
    }
    (ok, out)
}

/// The mock's `ApiVersions` answer with `SaslHandshake` and
/// `SaslAuthenticate` (versions 0..1) added. The mock answers versions up
/// to 2 (a v3 request gets UNSUPPORTED_VERSION and librdkafka asks again
/// with v2): error code, an int32 count, 6-byte entries (key, min, max),
/// the throttle time. Other answers pass unchanged.
fn with_sasl_apis(frame: &[u8], version: i16) -> Vec<u8> {
    let error = i16::from_be_bytes([frame[4], frame[5]]);
    if version >= 3 || error != 0 {
        return frame.to_vec();
    }
    let count = i32::from_be_bytes([frame[6], frame[7], frame[8], frame[9]]);
    let end = 10 + 6 * count as usize;
    let mut out = frame[..6].to_vec(); // correlation id, error code
    out.extend_from_slice(&(count + 2).to_be_bytes());
    out.extend_from_slice(&frame[10..end]);
    for api in [API_SASL_HANDSHAKE, API_SASL_AUTHENTICATE] {
        out.extend_from_slice(&api.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&1i16.to_be_bytes());
    }
    out.extend_from_slice(&frame[end..]);
    out
}

/// Produces `values` to partition 0 of `topic` through `bootstrap` with
/// the client `properties` (security settings).
pub fn produce(bootstrap: &str, properties: &[(&str, &str)], topic: &str, values: &[String]) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().expect("producer");
    for value in values {
        producer
            .send(
                rdkafka::producer::BaseRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(value),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(20)).expect("flush");
}
