//! Benchmark of iosnoop's whole per-I/O path in user space, without a kernel: decode
//! synthetic 64 KiB `trace_pipe_raw` sub-buffers built with the 6.18 block formats from
//! tests/fixtures, merge two CPUs, pair, and format the output rows. Prints ns per I/O.
//!
//!     cargo bench -p iosnoop --bench rows

use iosnoop::RowFormat;
use perf_tools_block::synthetic::{self, Load};
use perf_tools_block::{BlockDecoder, BlockPipeline, Full, StartPoint};
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
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let decoder =
            BlockDecoder::from_formats(None, &issue, &complete).unwrap_or_else(|e| panic!("{e}"));
        let mut pipe = BlockPipeline::<Full>::new(decoder, StartPoint::Issue);
        let mut rows = RowFormat::new(false, false);
        let mut out = Vec::with_capacity(1 << 20);
        let mut bytes = 0usize;
        let t = Instant::now();
        synthetic::replay(&pages, &layout, 1, &mut pipe, |pipe, wm| {
            pipe.release(wm, |_| true, |c| rows.row(&mut out, c));
            // Stand-in for the write(2) of each batch.
            bytes += out.len();
            out.clear();
        });
        let ns = t.elapsed().as_nanos() as f64 / ios as f64;
        assert!(bytes > 50 * ios as usize, "rows were formatted");
        best = best.min(ns);
    }
    println!(
        "iosnoop rows: {best:.1} ns per I/O (decode + merge + pair + format, best of {rounds})"
    );
}
