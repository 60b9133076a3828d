//! Retry backoff: exponential with jitter, from an injected random source.

use rand::Rng;

/// The delay before retry number `attempt` (1 = first retry): `base * 2^(attempt-1)`, capped
/// at `max`, then "equal jitter": a uniform pick in the upper half, so retries of many steps
/// that failed together spread out but never come back sooner than half the nominal delay.
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64, rng: &mut impl Rng) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let nominal = base_ms.saturating_mul(1u64 << exp).min(max_ms).max(1);
    let half = nominal / 2;
    half + rng.random_range(0..=nominal - half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn delays_grow_and_stay_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..40 {
            let nominal = (250u64 << (attempt - 1).min(32)).min(60_000);
            let d = backoff_ms(attempt, 250, 60_000, &mut rng);
            assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d}");
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let a: Vec<_> = (1..10)
            .map({
                let mut r = StdRng::seed_from_u64(1);
                move |i| backoff_ms(i, 100, 10_000, &mut r)
            })
            .collect();
        let b: Vec<_> = (1..10)
            .map({
                let mut r = StdRng::seed_from_u64(1);
                move |i| backoff_ms(i, 100, 10_000, &mut r)
            })
            .collect();
        assert_eq!(a, b);
    }
}
