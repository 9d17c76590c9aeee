//! Repeated ratio rounds: the command scenarios and pgbench again, alternately, so that the
//! service/pgbench ratio is the median of several side-by-side pairs. One pair moves with
//! whatever else the machine does during its minute (0.51–0.57 for the same binary in
//! back-to-back runs here); the median of alternating pairs much less.

use std::collections::BTreeMap;

use serde::Serialize;

/// The command scenarios a round repeats: closed-loop commands that need nothing prepared
/// (publish needs publishable models, the history scenarios a restarted server).
pub const REPEATED: [&str; 3] = ["create", "update-if-match", "update"];

/// The command scenarios whose ratio the report gives.
pub const WITH_RATIO: [&str; 5] = [
    "create",
    "update-if-match",
    "update",
    "publish",
    "history-short",
];

/// The report name of a scenario measured again in round `round` (round 1 keeps its name).
pub fn scenario_name(name: &str, round: usize) -> String {
    if round <= 1 {
        name.to_owned()
    } else {
        format!("{name} (round {round})")
    }
}

/// One round's pgbench rate and the ratios of the command scenarios measured in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatioRound {
    pub round: usize,
    pub pgbench_tps: f64,
    pub ratios: BTreeMap<String, f64>,
}

/// The rounds' ratios: `throughput(scenario, round)` is the command rate of a scenario in
/// a round (`None` where it was not measured), `pgbench_tps[k]` pgbench's rate in round
/// `k + 1`.
pub fn ratio_rounds(
    pgbench_tps: &[f64],
    throughput: impl Fn(&str, usize) -> Option<f64>,
) -> Vec<RatioRound> {
    pgbench_tps
        .iter()
        .enumerate()
        .map(|(k, &tps)| {
            let round = k + 1;
            let ratios = WITH_RATIO
                .iter()
                .filter_map(|&name| {
                    throughput(name, round).map(|rate| (name.to_owned(), rate / tps.max(1e-9)))
                })
                .collect();
            RatioRound {
                round,
                pgbench_tps: tps,
                ratios,
            }
        })
        .collect()
}

/// Each scenario's median ratio over the rounds that measured it.
pub fn median_ratios(rounds: &[RatioRound]) -> BTreeMap<String, f64> {
    let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in rounds {
        for (name, ratio) in &round.ratios {
            by_name.entry(name.clone()).or_default().push(*ratio);
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, mut ratios)| median(&mut ratios).map(|m| (name, m)))
        .collect()
}

/// The median (the mean of the middle two for an even count); `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_takes_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [0.5]), Some(0.5));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn round_one_keeps_the_scenario_name_later_rounds_are_numbered() {
        assert_eq!(scenario_name("update", 1), "update");
        assert_eq!(scenario_name("update", 3), "update (round 3)");
    }

    #[test]
    fn each_round_divides_by_its_own_pgbench_rate_and_the_ratio_is_their_median() {
        // Round 2 ran on a slower machine: both rates dropped, the ratio did not.
        let rates: BTreeMap<(&str, usize), f64> = [
            (("update", 1), 1500.0),
            (("update", 2), 1200.0),
            (("update", 3), 1650.0),
            (("publish", 1), 900.0),
        ]
        .into_iter()
        .collect();
        let rounds = ratio_rounds(&[3000.0, 2000.0, 3000.0], |name, round| {
            rates.get(&(name, round)).copied()
        });
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[1].round, 2);
        assert_eq!(rounds[1].pgbench_tps, 2000.0);
        assert_eq!(rounds[1].ratios.get("update"), Some(&0.6));
        assert_eq!(rounds[1].ratios.get("publish"), None);

        let medians = median_ratios(&rounds);
        assert_eq!(medians.get("update"), Some(&0.55)); // 0.5, 0.6, 0.55
        assert_eq!(medians.get("publish"), Some(&0.3)); // round 1 only
        assert_eq!(medians.get("create"), None);
    }
}
