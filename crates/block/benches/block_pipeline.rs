//! Benchmark of the per-event path of iosnoop and iolatency without a kernel: decode
//! synthetic `trace_pipe_raw` pages (built with the 6.18 block event formats from
//! tests/fixtures), merge two CPUs' events in time order and pair starts with
//! completions, keeping every detail (iosnoop) or only the times (iolatency). Prints
//! nanoseconds of CPU per I/O (two events).
//!
//!     cargo bench -p perf-tools-core --bench block_pipeline

use perf_tools_block::synthetic::{self, Load};
use perf_tools_block::{BlockDecoder, BlockPipeline, Detail, Full, Lean, StartPoint};
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::ringbuf::PageLayout;
use std::time::Instant;

fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/formats/6.18"
    );
    let (issue, complete) =
        synthetic::formats(std::path::Path::new(dir)).unwrap_or_else(|e| panic!("{e}"));
    let ios = 1_000_000;
    let rounds = synthetic::bench_rounds(5);
    for (label, layout) in [
        ("4 KiB sub-buffers", PageLayout::X86_64_4K),
        ("64 KiB sub-buffers", PageLayout::X86_64_64K),
    ] {
        let load = Load::fio(ios);
        let (pages, lats) = synthetic::pages(&issue, &complete, layout, load);
        for (detail, ns) in [
            (
                "full",
                best::<Full>(&issue, &complete, &pages, layout, rounds, &lats),
            ),
            (
                "lean",
                best::<Lean>(&issue, &complete, &pages, layout, rounds, &lats),
            ),
        ] {
            println!("block pipeline, {label}, {detail} detail: {ns:.1} ns per I/O (decode + merge + pair, best of {rounds})");
        }
    }
}

/// Best time per I/O over `rounds` replays keeping detail `D`; checks every I/O is
/// paired with its latency (`lats`: those the pages were built with).
fn best<D: Detail>(
    issue: &EventFormat,
    complete: &EventFormat,
    pages: &[Vec<Vec<u8>>],
    layout: PageLayout,
    rounds: usize,
    lats: &[u64],
) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let decoder =
            BlockDecoder::from_formats(None, issue, complete).unwrap_or_else(|e| panic!("{e}"));
        let mut pipe = BlockPipeline::<D>::new(decoder, StartPoint::Issue);
        let mut sum = 0u64;
        let mut n = 0u64;
        let t = Instant::now();
        synthetic::replay(pages, &layout, 1, &mut pipe, |pipe, wm| {
            pipe.release(
                wm,
                |_| true,
                |c| {
                    sum += c.latency_ns();
                    n += 1;
                },
            )
        });
        let ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
        assert_eq!(n, lats.len() as u64, "every I/O paired");
        assert_eq!(sum, lats.iter().sum::<u64>(), "latencies");
        best = best.min(ns);
    }
    best
}
