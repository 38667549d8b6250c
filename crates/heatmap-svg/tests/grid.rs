//! The grid's counting: every point in the cell that holds it, or counted as left out.
#![allow(clippy::unwrap_used)]

use perf_tools_heatmap::{render, Axis, Grid, GridOptions, Style};

fn opts() -> GridOptions {
    GridOptions::default()
}

#[test]
fn fixed_axis_puts_points_where_trace2heatmap_does() {
    let mut g = Grid::new(GridOptions {
        max_lat: Some(100.0),
        rows: 10,
        ..opts()
    })
    .unwrap();
    // Step int(100 / 10) = 10: row = int(lat / 10), column = int(t - t0).
    for (t, l) in [
        (5.0, 0.0),
        (5.9, 9.99),
        (6.0, 10.0),
        (7.5, 55.0),
        (7.9, 100.0),
    ] {
        assert!(g.add(t, l));
    }
    assert!(!g.add(6.0, 100.5));
    assert!(!g.add(6.0, -1.0));
    assert_eq!(g.count(0, 0), 2);
    assert_eq!(g.count(1, 1), 1);
    assert_eq!(g.count(2, 5), 1);
    // Latency == maxlat: row 10, drawn (trace2heatmap.pl leaves that row out).
    assert_eq!(g.count(2, 10), 1);
    assert_eq!(g.rows(), 11);
    assert_eq!(g.columns(), 3);
    assert_eq!(g.counted(), 5);
    assert_eq!((g.excluded.above_max, g.excluded.below_min), (1, 1));
    assert_eq!(g.row_bound(3), 30.0);
}

#[test]
fn rows_reach_maxlat_even_when_empty() {
    let mut g = Grid::new(GridOptions {
        max_lat: Some(1000.0),
        rows: 50,
        ..opts()
    })
    .unwrap();
    g.add(0.0, 5.0);
    assert_eq!(g.rows(), 50);
}

#[test]
fn auto_step_doubles_and_keeps_every_count_in_its_cell() {
    let mut g = Grid::new(GridOptions { rows: 8, ..opts() }).unwrap();
    let pts: Vec<(f64, f64)> = (0..2000)
        .map(|i| ((i % 7) as f64 * 0.9, ((i * 7919) % 1013) as f64))
        .collect();
    for &(t, l) in &pts {
        assert!(g.add(t, l));
    }
    let Axis::Linear {
        step: Some(step), ..
    } = g.axis()
    else {
        panic!("linear axis with a step expected")
    };
    // Largest latency 1012 with at most 8 rows: power-of-two step 128 (1012/128 < 8).
    assert_eq!(step, 128.0);
    // Counting afresh with that step gives the same cells.
    let mut expect = std::collections::HashMap::new();
    for &(t, l) in &pts {
        *expect
            .entry(((t as usize), (l / step) as usize))
            .or_insert(0u64) += 1;
    }
    for c in 0..g.columns() {
        for r in 0..g.rows() {
            assert_eq!(
                g.count(c, r),
                expect.get(&(c, r)).copied().unwrap_or(0),
                "cell {c},{r}"
            );
        }
    }
    assert_eq!(g.counted(), 2000);
    assert!(g.rows() <= 8);
}

#[test]
fn auto_step_with_only_the_minimum_so_far() {
    let mut g = Grid::new(GridOptions { rows: 4, ..opts() }).unwrap();
    g.add(0.0, 0.0);
    g.add(0.0, 0.0);
    g.add(0.0, 3.0);
    // Step: smallest power of two with 3 / step < 4 = 1.
    assert_eq!(g.count(0, 0), 2);
    assert_eq!(g.count(0, 3), 1);
    g.add(0.0, 7.5);
    // Step 2 now: rows 0-1 merge.
    assert_eq!(g.column(0), &[2, 1, 0, 1]);
}

#[test]
fn fractional_latencies_on_the_auto_axis() {
    let mut g = Grid::new(GridOptions { rows: 50, ..opts() }).unwrap();
    for l in [0.01, 0.02, 0.62, 1.23] {
        g.add(0.0, l);
    }
    let Axis::Linear {
        step: Some(step), ..
    } = g.axis()
    else {
        panic!()
    };
    assert_eq!(step, 2f64.powi(-5));
    assert_eq!(g.count(0, (1.23 / step) as usize), 1);
    assert_eq!(g.column(0).iter().sum::<u64>(), 4);
}

#[test]
fn earlier_points_later_in_the_input_add_columns_to_the_left() {
    let mut g = Grid::new(GridOptions {
        max_lat: Some(10.0),
        rows: 10,
        ..opts()
    })
    .unwrap();
    g.add(100.0, 1.0);
    g.add(98.5, 2.0);
    g.add(101.0, 3.0);
    assert_eq!(g.columns(), 4);
    assert_eq!(g.first_column(), -2);
    assert_eq!(g.count(0, 2), 1);
    assert_eq!(g.count(2, 1), 1);
    assert_eq!(g.count(3, 3), 1);
}

#[test]
fn column_limits_count_what_they_leave_out() {
    let mut g = Grid::new(GridOptions {
        max_col: Some(4),
        limit_cols: 100,
        ..opts()
    })
    .unwrap();
    g.add(0.0, 1.0);
    assert!(g.add(4.9, 1.0));
    assert!(!g.add(5.0, 1.0));
    assert!(g.add(-50.0, 1.0));
    assert!(!g.add(-200.0, 1.0));
    assert_eq!(g.excluded.beyond_max_col, 1);
    assert_eq!(g.excluded.beyond_limit, 1);
    assert!(!g.add(f64::NAN, 1.0));
    assert_eq!(g.excluded.not_finite, 1);
    assert_eq!(g.counted(), 3);
    assert_eq!(g.excluded.total(), 3);
}

#[test]
fn units_and_stepsec_follow_trace2heatmap() {
    let mut g = Grid::new(GridOptions {
        time_factor: 1e6,
        step_sec: 0.5,
        max_lat: Some(100.0),
        ..opts()
    })
    .unwrap();
    g.add(17_442_020_318_913.0, 1.0);
    g.add(17_442_020_318_913.0 + 499_999.0, 1.0);
    g.add(17_442_020_318_913.0 + 500_000.0, 1.0);
    g.add(17_442_020_318_913.0 + 2_250_000.0, 1.0);
    assert_eq!(g.count(0, 0), 2);
    assert_eq!(g.count(1, 0), 1);
    assert_eq!(g.count(4, 0), 1);
    assert_eq!(g.column_start(4), 2.0);
}

#[test]
fn log_axis_four_rows_per_doubling() {
    let mut g = Grid::new(GridOptions {
        log: true,
        ..opts()
    })
    .unwrap();
    assert!(!g.add(0.0, 0.0));
    assert_eq!(g.excluded.below_min, 1);
    g.add(0.0, 16.0); // bin floor(4 * 4) = 16
    g.add(0.0, 1.0); // bin 0: rows shift up by 16
    g.add(0.0, 1.1); // log2(1.1) * 4 = 0.55: bin 0
    g.add(0.0, 1.2); // 1.05: bin 1
    g.add(0.0, 1000.0); // 39.86: bin 39
    assert_eq!(g.count(0, 16), 1);
    assert_eq!(g.count(0, 0), 2);
    assert_eq!(g.count(0, 1), 1);
    assert_eq!(g.count(0, 39), 1);
    assert_eq!(g.rows(), 40);
    assert_eq!(g.row_bound(0), 1.0);
    assert_eq!(g.row_bound(4), 2.0);
    assert_eq!(g.row_bound(40), 1024.0);
}

#[test]
fn percentile_rows_by_nearest_rank() {
    let mut g = Grid::new(GridOptions {
        max_lat: Some(100.0),
        rows: 100,
        ..opts()
    })
    .unwrap();
    for l in 0..100 {
        g.add(0.0, l as f64);
    }
    assert_eq!(g.percentile_row(0, 0.5), Some(49));
    assert_eq!(g.percentile_row(0, 0.99), Some(98));
    assert_eq!(g.percentile_row(1, 0.5), None);
}

#[test]
fn bad_options_are_refused() {
    for o in [
        GridOptions {
            step_sec: 0.0,
            ..opts()
        },
        GridOptions { rows: 0, ..opts() },
        GridOptions {
            max_lat: Some(0.0),
            ..opts()
        },
        GridOptions {
            step_lat: Some(-1.0),
            ..opts()
        },
        GridOptions {
            step_lat: Some(0.001),
            max_lat: Some(1e6),
            ..opts()
        },
        GridOptions {
            log: true,
            step_lat: Some(1.0),
            ..opts()
        },
    ] {
        assert!(Grid::new(o.clone()).is_err(), "{o:?}");
    }
}

#[test]
fn memory_is_the_grid_not_the_points() {
    // A million points in 10 columns x 50 rows: the grid holds 500 counts.
    let mut g = Grid::new(GridOptions {
        max_lat: Some(1000.0),
        ..opts()
    })
    .unwrap();
    for i in 0..1_000_000u64 {
        g.add((i % 10) as f64, (i % 1000) as f64);
    }
    assert_eq!(g.columns(), 10);
    assert_eq!(g.rows(), 50);
    assert_eq!(g.counted(), 1_000_000);
    assert_eq!(g.count(3, 7), 2000);
}

#[test]
fn renders_every_cell_once_with_its_count() {
    let mut g = Grid::new(GridOptions {
        max_lat: Some(100.0),
        rows: 10,
        ..opts()
    })
    .unwrap();
    for (t, l, n) in [(0.0, 5.0, 3), (2.0, 95.0, 7), (2.5, 45.0, 1)] {
        for _ in 0..n {
            g.add(t, l);
        }
    }
    let mut svg = Vec::new();
    render(&g, &Style::default(), &mut svg).unwrap();
    let text = String::from_utf8(svg).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    let cells: Vec<String> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "rect")
        .filter_map(|n| n.attribute("onmouseover").map(str::to_string))
        .collect();
    assert_eq!(cells, ["s(0,0,3)", "s(2,4,1)", "s(2,9,7)"]);
    let hottest = doc
        .descendants()
        .find(|n| n.attribute("onmouseover") == Some("s(2,9,7)"))
        .unwrap();
    assert_eq!(hottest.attribute("fill"), Some("rgb(255,0,0)"));
    assert!(text.contains(">11 events<"));
}

#[test]
fn log_rows_agree_with_log2() {
    // Each latency's row (bin of 4 per doubling) is floor(4 log2(latency)), checked on
    // a spread of values from 1e-6 to 1e9 (none within rounding of a bin bound).
    let mut x = 1e-6f64;
    let mut g = Grid::new(GridOptions {
        log: true,
        min_lat: 1e-6,
        ..opts()
    })
    .unwrap();
    let low = (1e-6f64.log2() * 4.0).floor() as i64;
    let mut n = 0;
    while x < 1e9 {
        let want = (x.log2() * 4.0).floor() as i64 - low;
        let frac = (x.log2() * 4.0).fract().abs();
        if frac > 1e-9 && frac < 1.0 - 1e-9 {
            let before = g.column(0).to_vec();
            assert!(g.add(0.0, x));
            let after = g.column(0);
            let row = (0..after.len())
                .find(|&r| after[r] != before.get(r).copied().unwrap_or(0))
                .unwrap();
            assert_eq!(row as i64, want, "{x}");
            n += 1;
        }
        x *= 1.0137;
    }
    assert!(n > 2000);
    // Exact powers of two open their row.
    for p in [-3i32, 0, 1, 10, 30] {
        let mut g = Grid::new(GridOptions {
            log: true,
            ..opts()
        })
        .unwrap();
        g.add(0.0, 1.0);
        g.add(0.0, 2f64.powi(p));
        if p >= 0 {
            assert_eq!(g.count(0, 4 * p as usize), 1 + (p == 0) as u64, "2^{p}");
        }
    }
}
