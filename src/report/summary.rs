//! How a query's totals read to a person: the line front ends print when a
//! query ends (`41 batches; 4,000,000 rows in, 12 rows out`) and the counts
//! in `SHOW QUERIES` status lines. Numbers are grouped by thousands and
//! nouns agree with them ("1 batch", "2 batches").

use std::fmt;

use super::QuerySummary;

/// `n` with a comma between groups of three digits: `4,000,000`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun in the number it takes: `1 batch`, `2 batches`.
pub fn counted(n: u64, singular: &str, plural: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { singular } else { plural })
}

/// `41 batches; 4,000,000 rows in, 12 rows out`, then the malformed records
/// skipped and the late rows when there were any.
impl fmt::Display for QuerySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}; {} in, {} out",
            counted(self.batches, "batch", "batches"),
            counted(self.input_rows, "row", "rows"),
            counted(self.output_rows, "row", "rows"),
        )?;
        if self.skipped > 0 {
            write!(
                f,
                ", {} skipped",
                counted(self.skipped, "malformed record", "malformed records")
            )?;
        }
        if self.late_rows > 0 {
            write!(f, ", {}", counted(self.late_rows, "late row", "late rows"))?;
            if self.late_routed > 0 {
                write!(f, " ({} routed to late streams)", grouped(self.late_routed))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(4_000_000), "4,000,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn nouns_agree_with_their_counts() {
        let one = QuerySummary {
            batches: 1,
            input_rows: 1,
            output_rows: 0,
            ..QuerySummary::default()
        };
        assert_eq!(one.to_string(), "1 batch; 1 row in, 0 rows out");
        let many = QuerySummary {
            batches: 41,
            input_rows: 4_000_000,
            output_rows: 12,
            skipped: 1,
            late_rows: 3,
            late_routed: 2,
            ..QuerySummary::default()
        };
        assert_eq!(
            many.to_string(),
            "41 batches; 4,000,000 rows in, 12 rows out, 1 malformed record skipped, \
             3 late rows (2 routed to late streams)"
        );
    }
}
