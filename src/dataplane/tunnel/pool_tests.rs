//! Unit tests of [`Pace`], the client pool's adaptive refill rules (PROTOCOL.md §4): each
//! round the interval moves by 100 ms toward the minimum when fewer than 20% of the
//! capacity is idle and toward the maximum when more than 80% is; the capacity moves by 1
//! toward `max` when more than 80% of a round's dials created a connection and toward
//! `min` when fewer than 20% did; both are clamped to their ranges.

use std::time::Duration;

use super::{Pace, STEP};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A pace as a client starts it: capacity `min`, interval at its minimum (100 ms…1 s).
fn pace(capacity: usize, min: usize, max: usize, interval_ms: u64) -> Pace {
    Pace {
        capacity,
        min,
        max,
        interval: ms(interval_ms),
        min_interval: ms(100),
        max_interval: ms(1000),
    }
}

#[test]
fn the_interval_step_is_100_ms() {
    assert_eq!(STEP, ms(100));
}

#[test]
fn a_pool_running_dry_refills_faster() {
    // 0 and 1 idle of 10 are below 20%: one step shorter per round.
    let mut p = pace(10, 10, 20, 500);
    p.adjust_interval(0);
    assert_eq!(p.interval, ms(400));
    p.adjust_interval(1);
    assert_eq!(p.interval, ms(300));
}

#[test]
fn a_mostly_idle_pool_refills_slower() {
    // 9 and 10 idle of 10 are above 80%: one step longer per round.
    let mut p = pace(10, 10, 20, 500);
    p.adjust_interval(9);
    assert_eq!(p.interval, ms(600));
    p.adjust_interval(10);
    assert_eq!(p.interval, ms(700));
}

#[test]
fn between_20_and_80_percent_idle_the_interval_holds() {
    // 2 of 10 is exactly 20% and 8 of 10 exactly 80%: neither rule applies (strict bounds).
    for idle in 2..=8 {
        let mut p = pace(10, 10, 20, 500);
        p.adjust_interval(idle);
        assert_eq!(p.interval, ms(500), "idle {idle} of 10");
    }
}

#[test]
fn the_interval_stays_within_its_range() {
    let mut p = pace(10, 10, 20, 100);
    for _ in 0..5 {
        p.adjust_interval(0);
    }
    assert_eq!(p.interval, ms(100), "not below the minimum");
    for round in 1..=9 {
        p.adjust_interval(10);
        assert_eq!(p.interval, ms(100 + 100 * round), "round {round}");
    }
    for _ in 0..5 {
        p.adjust_interval(10);
    }
    assert_eq!(p.interval, ms(1000), "not above the maximum");
    // An interval already off the 100 ms grid is still clamped, not wrapped.
    p.interval = ms(150);
    p.adjust_interval(0);
    assert_eq!(p.interval, ms(100));
    p.interval = ms(950);
    p.adjust_interval(10);
    assert_eq!(p.interval, ms(1000));
}

#[test]
fn a_minimum_interval_below_one_step_saturates_at_it() {
    let mut p = pace(10, 10, 20, 50);
    p.min_interval = ms(0);
    p.adjust_interval(0);
    assert_eq!(p.interval, ms(0));
    p.adjust_interval(0);
    assert_eq!(p.interval, ms(0));
}

#[test]
fn the_interval_rule_leaves_the_capacity_alone_and_vice_versa() {
    let mut p = pace(10, 5, 20, 500);
    p.adjust_interval(0);
    assert_eq!((p.capacity, p.min, p.max), (10, 5, 20));
    p.adjust_capacity(10);
    assert_eq!(p.interval, ms(400));
    assert_eq!((p.min_interval, p.max_interval), (ms(100), ms(1000)));
}

#[test]
fn a_round_that_creates_almost_every_connection_grows_the_capacity_by_one() {
    // 9 and 10 of 10 are above 80%.
    let mut p = pace(10, 10, 20, 100);
    p.adjust_capacity(10);
    assert_eq!(p.capacity, 11);
    p.adjust_capacity(8);
    assert_eq!(p.capacity, 11, "8 of 11 is not above 80%");
    p.adjust_capacity(9);
    assert_eq!(p.capacity, 12, "9 of 11 is");
}

#[test]
fn a_round_that_creates_almost_nothing_shrinks_the_capacity_by_one() {
    // 0 and 1 of 10 are below 20%.
    let mut p = pace(10, 2, 20, 100);
    p.adjust_capacity(0);
    assert_eq!(p.capacity, 9);
    p.adjust_capacity(1);
    assert_eq!(p.capacity, 8);
}

#[test]
fn between_20_and_80_percent_created_the_capacity_holds() {
    for created in 2..=8 {
        let mut p = pace(10, 2, 20, 100);
        p.adjust_capacity(created);
        assert_eq!(p.capacity, 10, "created {created} of 10");
    }
}

#[test]
fn the_capacity_stays_within_min_and_max() {
    let mut p = pace(4, 4, 7, 100);
    for round in 1..=3 {
        p.adjust_capacity(p.capacity);
        assert_eq!(p.capacity, 4 + round, "grows by exactly one per round");
    }
    for _ in 0..5 {
        p.adjust_capacity(p.capacity);
    }
    assert_eq!(p.capacity, 7, "not above max");
    for _ in 0..10 {
        p.adjust_capacity(0);
    }
    assert_eq!(p.capacity, 4, "not below min");
}

#[test]
fn a_one_connection_pool_neither_vanishes_nor_outgrows_its_max() {
    let mut p = pace(1, 1, 1, 100);
    p.adjust_capacity(0);
    assert_eq!(p.capacity, 1);
    p.adjust_capacity(1);
    assert_eq!(p.capacity, 1);
}

#[test]
fn rounds_of_a_busy_pool_reach_max_capacity_and_the_shortest_interval() {
    // Every round: the pool was drained (nothing idle) and every dial succeeded.
    let mut p = pace(8, 8, 32, 1000);
    let mut rounds = 0;
    while (p.capacity, p.interval) != (32, ms(100)) {
        rounds += 1;
        assert!(
            rounds <= 24,
            "did not converge: {} {:?}",
            p.capacity,
            p.interval
        );
        p.adjust_interval(0);
        p.adjust_capacity(p.capacity);
    }
    // Capacity grows by one per round: 24 rounds from 8 to 32.
    assert_eq!(rounds, 24);
}

#[test]
fn rounds_of_an_idle_pool_fall_back_to_min_capacity_and_the_longest_interval() {
    // Every round: everything still idle and nothing dialled (or every dial failed).
    let mut p = pace(32, 8, 32, 100);
    for _ in 0..24 {
        p.adjust_interval(p.capacity);
        p.adjust_capacity(0);
    }
    assert_eq!((p.capacity, p.interval), (8, ms(1000)));
}
