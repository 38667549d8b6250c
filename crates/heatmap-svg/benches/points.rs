//! Benchmark of the heat map library (run by scripts/bench-heatmap.sh):
//! 10 million (time, latency) points counted and rendered, wall time and peak memory
//! (VmHWM); and the cost of one `IoHeatmap::add`, the `--heatmap` hook of iosnoop and
//! iolatency, per I/O.
//!
//!     cargo bench -p perf-tools-heatmap --bench points

use perf_tools_heatmap::{render, Grid, GridOptions, IoHeatmap, Style};
use std::time::Instant;

/// xorshift64*: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of this thread, ns (from /proc: not wall time, which a loaded machine
/// stretches).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::var("POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let before = vm_hwm_kb();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    let c0 = cpu_ns();
    let mut grid = Grid::new(GridOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let time = i as f64 * 600.0 / n as f64;
        let lat = if rng.unit() < 0.7 {
            2000.0 + rng.unit() * 1000.0
        } else {
            rng.unit() * 20000.0
        };
        grid.add(time, lat.floor());
    }
    let counted = t.elapsed();
    let counted_cpu = cpu_ns() - c0;
    let mut out = CountingSink(0);
    let style = Style {
        percentiles: true,
        ..Style::default()
    };
    render(&grid, &style, &mut out).unwrap_or_else(|e| panic!("{e}"));
    let total = t.elapsed();
    let total_cpu = cpu_ns() - c0;
    assert_eq!(grid.counted(), n);
    println!(
        "{n} points: counted in {:.2} s CPU ({:.2} s wall), rendered ({} cells, {} KB of SVG) by {:.2} s CPU ({:.2} s wall); peak memory {} MB ({} MB before)",
        counted_cpu as f64 / 1e9,
        counted.as_secs_f64(),
        grid.columns() * grid.rows(),
        out.0 / 1024,
        total_cpu as f64 / 1e9,
        total.as_secs_f64(),
        vm_hwm_kb() / 1024,
        before / 1024
    );

    // The --heatmap hook: one add per paired I/O (ns timestamps, 300k IOPS, latencies
    // of 50-550 us with a tail).
    let ios = 10_000_000u64;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut heat = IoHeatmap::new("bench", std::path::Path::new("/tmp/unused.svg"))
            .unwrap_or_else(|e| panic!("{e}"));
        let lats: Vec<u64> = (0..4096)
            .map(|_| {
                50_000 + (rng.unit() * 500_000.0) as u64 + (rng.next() % 64 == 0) as u64 * 5_000_000
            })
            .collect();
        let c0 = cpu_ns();
        let mut end = 1_000_000_000_000u64;
        for i in 0..ios {
            end += 3_333;
            heat.add(end, lats[(i & 4095) as usize]);
        }
        let ns = (cpu_ns() - c0) as f64 / ios as f64;
        assert_eq!(heat.counted(), ios);
        best = best.min(ns);
    }
    println!("IoHeatmap::add: {best:.1} ns of CPU per I/O (best of 5 x {ios})");
}

/// Counts the bytes written.
struct CountingSink(usize);
impl std::io::Write for CountingSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
