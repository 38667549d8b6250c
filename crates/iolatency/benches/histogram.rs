//! Benchmark of iolatency's whole per-I/O path in user space, without a kernel: decode
//! synthetic 64 KiB `trace_pipe_raw` sub-buffers built with the 6.18 block formats from
//! tests/fixtures, merge two CPUs, pair, and count into the histogram. Prints ns per I/O.
//!
//!     cargo bench -p iolatency --bench histogram

use iolatency::Summary;
use perf_tools_block::synthetic::{self, Load};
use perf_tools_block::{BlockDecoder, BlockPipeline, Lean, StartPoint};
use perf_tools_ftrace::ringbuf::PageLayout;
use std::time::Instant;

fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/formats/6.18"
    );
    let (issue, complete) =
        synthetic::formats(std::path::Path::new(dir)).unwrap_or_else(|e| panic!("{e}"));
    let layout = PageLayout::X86_64_64K;
    let ios = 1_000_000;
    let rounds = synthetic::bench_rounds(5);
    let load = Load::fio(ios);
    let (pages, _) = synthetic::pages(&issue, &complete, layout, load);
    for (label, exact) in [("default", false), ("-P", true)] {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let decoder = BlockDecoder::from_formats(None, &issue, &complete)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut pipe = BlockPipeline::<Lean>::new(decoder, StartPoint::Issue);
            let mut summary = Summary::new(1_000_000, exact, false);
            let t = Instant::now();
            synthetic::replay(&pages, &layout, 1, &mut pipe, |pipe, wm| {
                pipe.release(wm, |_| true, |c| summary.record(c.dev, c.latency_ns()))
            });
            let ns = t.elapsed().as_nanos() as f64 / ios as f64;
            assert_eq!(summary.total(), ios, "every I/O counted");
            best = best.min(ns);
        }
        println!("iolatency {label}: {best:.1} ns per I/O (decode + merge + pair + histogram, best of {rounds})");
    }
}
