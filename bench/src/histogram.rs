//! Quantiles of a Prometheus histogram scraped from the server's `/actuator/prometheus`
//! (the server's own view of a wait, e.g. `read_your_writes_wait_seconds`), and single
//! samples of counters.

/// The value of the sample `series` (a name with its labels, exactly as exposed).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Cumulative `(upper bound in seconds, count)` buckets of `name`, `+Inf` last.
pub fn buckets(exposition: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, u64)> = exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, rest) = rest.split_once("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The observations of `after` that came after `before` (both cumulative buckets of one
/// histogram of one server, scraped at two times): the counts bucket by bucket.
pub fn since(after: &[(f64, u64)], before: &[(f64, u64)]) -> Vec<(f64, u64)> {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0, |(_, c)| *c);
            (bound, count.saturating_sub(earlier))
        })
        .collect()
}

/// The `q` quantile (0–1) in seconds, interpolated linearly inside its bucket as
/// Prometheus's `histogram_quantile` does; `None` without observations. A quantile in the
/// `+Inf` bucket is reported as the largest finite bound.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0_u64);
    for &(bound, count) in buckets {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let inside = (count - lower.1) as f64;
            let fraction = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE w histogram\n\
        w_sum 1.0\nw_count 100\n\
        w_bucket{le=\"0.001\"} 50\n\
        w_bucket{le=\"0.002\"} 90\n\
        w_bucket{le=\"0.005\"} 100\n\
        w_bucket{le=\"+Inf\"} 100\n";

    #[test]
    fn reads_the_buckets_in_bound_order() {
        let b = buckets(TEXT, "w");
        assert_eq!(b.len(), 4);
        assert_eq!(b[0], (0.001, 50));
        assert!(b[3].0.is_infinite());
    }

    #[test]
    fn interpolates_inside_the_bucket() {
        let b = buckets(TEXT, "w");
        assert!((quantile(&b, 0.5).expect("p50") - 0.001).abs() < 1e-12);
        // rank 99 of 100: 9 of the 10 observations in (0.002, 0.005].
        assert!((quantile(&b, 0.99).expect("p99") - 0.0047).abs() < 1e-9);
        assert_eq!(quantile(&[(f64::INFINITY, 0)], 0.5), None);
    }

    #[test]
    fn since_keeps_the_later_observations_only() {
        let before = [(0.001, 40), (0.002, 40), (f64::INFINITY, 45)];
        let after = buckets(TEXT, "w");
        let later = since(&after, &before);
        assert_eq!(later[0], (0.001, 10));
        assert_eq!(later[1], (0.002, 50));
        assert_eq!(
            later[2],
            (0.005, 100),
            "a bucket the earlier scrape lacked counts whole"
        );
        assert_eq!(later[3].1, 55);
    }
}
