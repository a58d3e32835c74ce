//! A hand-written Avro encoder of the tests' `bid` records (`user` string,
//! `amount` long), independent of the decoder under test. The one copy:
//! the integration tests reach it as `common::avro`, the unit tests of
//! `src/source/kafka/avro.rs` include this file by path.

/// Avro's zig-zag varint of `n` (int and long).
pub fn long(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

/// A bid datum (string, then long), behind Confluent's header (magic 0,
/// schema id 42) if `confluent`.
pub fn bid(user: &str, amount: i64, confluent: bool) -> Vec<u8> {
    let mut out = if confluent {
        vec![0, 0, 0, 0, 42]
    } else {
        vec![]
    };
    out.extend(long(user.len() as i64));
    out.extend(user.as_bytes());
    out.extend(long(amount));
    out
}
