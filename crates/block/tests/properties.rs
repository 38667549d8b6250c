//! Property tests (proptest) for the decoders: no input makes them panic, loop or read out
//! of bounds, and synthetic pages decode back to exactly the events encoded.
//! (cargo-fuzz needs a nightly toolchain, which this project's machines cannot install;
//! these run on stable in CI, seeded from the real fixtures as well as random bytes.)
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_block::synthetic::{self, Load};
use perf_tools_block::{BlockDecoder, BlockPipeline, Detail, Device, Full, Lean, StartPoint};
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::merge::Merger;
use perf_tools_ftrace::ringbuf::{decode_page, Missed, PageBuilder, PageLayout};
use proptest::prelude::*;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Cases per property: `default`, or `PT_FUZZ_CASES` when set (scripts/fuzz.sh).
fn cases(default: u32) -> u32 {
    std::env::var("PT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn block_formats(kernel: &str) -> (EventFormat, EventFormat) {
    let dir = format!(
        "{}/../../tests/fixtures/formats/{kernel}",
        env!("CARGO_MANIFEST_DIR")
    );
    synthetic::formats(std::path::Path::new(&dir)).unwrap()
}

const REAL_PAGES: &[&str] = &[
    "pages/6.18/extend.bin",
    "pages/6.18/missed.bin",
    "pages/6.1/extend.bin",
    "pages/6.1/full1.bin",
    "pages/6.1/missed.bin",
];
const REAL_FORMATS: &[&str] = &[
    "formats/6.18/block_rq_issue",
    "formats/6.1/block_rq_complete",
    "formats/5.10/block_rq_insert",
    "formats/6.12/sys_enter_openat",
];

proptest! {
    // PT_FUZZ_CASES raises the count for longer runs (scripts/fuzz.sh).
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn page_decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
        let mut n = 0usize;
        let _ = decode_page(&bytes, &PageLayout::X86_64_4K, |_, p| { n += p.len(); });
        prop_assert!(n <= bytes.len());
    }

    #[test]
    fn page_decoder_survives_mutated_real_pages(which in 0..REAL_PAGES.len(), flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16)) {
        let mut page = fixture(REAL_PAGES[which]);
        for (at, v) in flips {
            page[at] = v;
        }
        let _ = decode_page(&page, &PageLayout::X86_64_4K, |_, _| {});
    }

    #[test]
    fn format_parser_survives_arbitrary_text(text in "\\PC{0,400}") {
        let _ = EventFormat::parse(&text);
    }

    #[test]
    fn format_parser_survives_mutated_real_formats(which in 0..REAL_FORMATS.len(), cut in 0usize..2000, insert in "\\PC{0,20}") {
        let text = String::from_utf8(fixture(REAL_FORMATS[which])).unwrap();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) { cut -= 1; }
        let mutated = format!("{}{}{}", &text[..cut], insert, &text[cut..]);
        if let Ok(f) = EventFormat::parse(&mutated) {
            // Whatever parses must be safe to read from any payload.
            let payload = vec![0xffu8; 64];
            for field in &f.fields {
                let _ = field.read_u64(&payload);
                let _ = field.read_i64(&payload);
                let _ = field.read_bytes(&payload);
            }
        }
    }

    /// Events spread over CPUs, encoded into kernel-format pages (time extends for big
    /// gaps, long-form events, discarded-event padding, absolute stamps), decoded and
    /// merged across CPUs, come back exactly, in timestamp order.
    #[test]
    fn encode_decode_merge_round_trip(
        events in proptest::collection::vec((0usize..3, 0u64..400_000_000, proptest::collection::vec(any::<u8>(), 1..150), any::<bool>()), 1..120),
        force_long in any::<bool>(),
    ) {
        let layout = PageLayout::X86_64_4K;
        // Per CPU: ascending timestamps.
        let mut clocks = [1_000u64; 3];
        let mut per_cpu: Vec<Vec<(u64, Vec<u8>, bool)>> = vec![Vec::new(); 3];
        for (cpu, gap, payload, discard_before) in events {
            clocks[cpu] += gap;
            per_cpu[cpu].push((clocks[cpu], payload, discard_before));
        }
        let mut merger = Merger::new();
        let mut expected = Vec::new();
        for (cpu, evs) in per_cpu.iter().enumerate() {
            let mut pages = Vec::new();
            let mut b = PageBuilder::new(layout, evs.first().map_or(0, |e| e.0));
            b.force_long = force_long;
            let mut prev_ts = evs.first().map_or(0, |e| e.0);
            for (ts, payload, discard_before) in evs {
                // A discarded event between two events, with a non-zero delta of its own
                // (no time extend): the kernel stores a zero delta as 1, a documented 1 ns
                // ambiguity of the format.
                if *discard_before && *ts >= prev_ts + 2 && *ts - 1 - prev_ts < (1 << 27) {
                    let _ = b.discarded(*ts - 1, 12);
                }
                prev_ts = *ts;
                if !b.event(*ts, payload) {
                    pages.push(b.finish(None));
                    b = PageBuilder::new(layout, *ts);
                    b.force_long = force_long;
                    prop_assert!(b.event(*ts, payload));
                }
                let padded = payload.len().div_ceil(4) * 4;
                let mut want = payload.clone();
                want.resize(padded, 0);
                expected.push((*ts, cpu, want));
            }
            pages.push(b.finish(None));
            for page in pages {
                let s = decode_page(&page, &layout, |ts, p| merger.push(cpu, ts, p.to_vec())).unwrap();
                prop_assert_eq!(s.missed, Missed::None);
            }
        }
        let mut got = Vec::new();
        merger.release(u64::MAX, |ts, p| got.push((ts, p.clone())));
        expected.sort_by_key(|e| (e.0, e.1));
        let want: Vec<(u64, Vec<u8>)> = expected.into_iter().map(|(ts, _, p)| (ts, p)).collect();
        prop_assert_eq!(got, want);
    }

    /// Block event payloads of any content (with a real event id) decode without panic.
    #[test]
    fn block_decoder_survives_arbitrary_payloads(
        kernel in 0usize..4,
        complete in any::<bool>(),
        mut payload in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let (issue, done) = block_formats(["6.18", "6.12", "6.1", "5.10"][kernel]);
        let dec = BlockDecoder::from_formats(None, &issue, &done).unwrap();
        let id = if complete { done.id } else { issue.id };
        if payload.len() >= 2 {
            payload[..2].copy_from_slice(&id.to_ne_bytes());
        }
        let _ = dec.decode(&payload);
    }

}

proptest! {
    // Each case builds and replays a whole trace: fewer cases (PT_FUZZ_CASES / 10).
    #![proptest_config(ProptestConfig { cases: cases(2000) / 10, ..ProptestConfig::default() })]

    /// A whole synthetic block trace, on any number of CPUs, drained in batches of any
    /// size, comes out as exactly the I/Os that went in, each with its latency.
    #[test]
    fn block_pipeline_pairs_every_io_once(
        kernel in 0usize..4,
        cpus in 1u32..5,
        ios in 1u64..3000,
        gap_ns in 1u64..20_000,
        depth in 1u64..64,
        batch in 1usize..6,
    ) {
        let (issue, done) = block_formats(["6.18", "6.12", "6.1", "5.10"][kernel]);
        let layout = PageLayout::X86_64_4K;
        let load = Load { ios, cpus, gap_ns, depth, dev: Device { major: 259, minor: 3 } };
        let (pages, lats) = synthetic::pages(&issue, &done, layout, load);
        let mut want = lats.clone();
        want.sort_unstable();
        let decoder = BlockDecoder::from_formats(None, &issue, &done).unwrap();
        // Both details iosnoop (Full) and iolatency (Lean) use pair the same I/Os.
        for (detail, (undecoded, unmatched, left, mut got_lats)) in [
            ("full", pair_all::<Full>(&decoder, &pages, &layout, batch)),
            ("lean", pair_all::<Lean>(&decoder, &pages, &layout, batch)),
        ] {
            prop_assert_eq!(undecoded, 0, "{}", detail);
            prop_assert_eq!(unmatched, 0, "{}", detail);
            prop_assert_eq!(left, 0, "{}", detail);
            got_lats.sort_unstable();
            prop_assert_eq!(&got_lats, &want, "{}", detail);
        }
    }
}

/// Replays `pages` through a pipeline keeping detail `D`, releasing after every `batch`
/// pages: (undecoded events, unmatched completions, starts left in flight, latencies).
fn pair_all<D: Detail>(
    decoder: &BlockDecoder,
    pages: &[Vec<Vec<u8>>],
    layout: &PageLayout,
    batch: usize,
) -> (u64, u64, usize, Vec<u64>) {
    let mut pipe = BlockPipeline::<D>::new(decoder.clone(), StartPoint::Issue);
    let mut got = Vec::new();
    synthetic::replay(pages, layout, batch, &mut pipe, |pipe, wm| {
        pipe.release(wm, |_| true, |c| got.push(c.latency_ns()))
    });
    (
        pipe.undecoded,
        pipe.inflight.unmatched,
        pipe.inflight.len(),
        got,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000) / 10, ..ProptestConfig::default() })]

    /// Events lost from a buffer (runs of events left out, the page after each run
    /// flagged with missed events as the kernel flags it) never produce a false pairing:
    /// every latency the pipeline reports is the latency of an I/O that really happened
    /// (its sector, start and completion), each at most once, although later I/Os reuse
    /// the sectors of those whose completion was lost; and every I/O not reported is
    /// accounted for, as a lost event or as an I/O dropped at a gap.
    #[test]
    fn block_pipeline_never_pairs_across_lost_events(
        kernel in 0usize..4,
        cpus in 1u32..5,
        ios in 1u64..3000,
        gap_ns in 1u64..20_000,
        depth in 1u64..64,
        batch in 1usize..6,
        blocks in prop_oneof![Just(1u64 << 21), 0u64..300],
        losses in proptest::collection::vec((0u32..4, 0usize..10_000, 1usize..400), 0..6),
        stored in any::<bool>(),
    ) {
        let (issue, done) = block_formats(["6.18", "6.12", "6.1", "5.10"][kernel]);
        let layout = PageLayout::X86_64_4K;
        let load = Load { ios, cpus, gap_ns, depth, dev: Device { major: 259, minor: 3 } };
        let (pages, ios, lost) =
            synthetic::lossy_pages(&issue, &done, layout, load, (blocks, false), &losses, stored);
        let truth: std::collections::HashSet<synthetic::Io> = ios.iter().copied().collect();
        let decoder = BlockDecoder::from_formats(None, &issue, &done).unwrap();
        for (detail, (got, dropped, overlapped)) in [
            ("full", pair_lossy::<Full>(&decoder, &pages, &layout, batch)),
            ("lean", pair_lossy::<Lean>(&decoder, &pages, &layout, batch)),
        ] {
            let mut seen = std::collections::HashSet::new();
            for io in &got {
                prop_assert!(
                    truth.contains(io),
                    "{}: reported {:?} ({} ns) is no real I/O", detail, io, io.end - io.start
                );
                prop_assert!(seen.insert(*io), "{}: {:?} reported twice", detail, io);
            }
            let missing = truth.len() as u64 - got.len() as u64;
            prop_assert!(
                missing <= lost + dropped,
                "{}: {} I/Os missing, {} events lost, {} dropped at gaps", detail, missing, lost, dropped
            );
            prop_assert_eq!(overlapped, 0, "{}: no two I/Os of a sector overlap", detail);
            if lost == 0 {
                prop_assert_eq!(missing, 0, "{}", detail);
                prop_assert_eq!(dropped, 0, "{}", detail);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000) / 10, ..ProptestConfig::default() })]

    /// I/Os of one sector in flight together (a few blocks, many I/Os in flight): no
    /// completion is paired with another I/O's start. Exactly the I/Os whose time in
    /// flight overlaps another's of their sector are left untimed, and counted.
    /// (Without lost events: after a loss, an I/O whose completion comes after another
    /// I/O of its sector started is paired with that start, see WARNINGS.md.)
    #[test]
    fn block_pipeline_never_pairs_two_ios_of_one_sector(
        kernel in 0usize..4,
        cpus in 1u32..5,
        ios in 1u64..3000,
        gap_ns in 1u64..20_000,
        depth in 1u64..64,
        batch in 1usize..6,
        blocks in 1u64..300,
    ) {
        let (issue, done) = block_formats(["6.18", "6.12", "6.1", "5.10"][kernel]);
        let layout = PageLayout::X86_64_4K;
        let load = Load { ios, cpus, gap_ns, depth, dev: Device { major: 259, minor: 3 } };
        let (pages, ios, lost) =
            synthetic::lossy_pages(&issue, &done, layout, load, (blocks, true), &[], false);
        prop_assert_eq!(lost, 0);
        // The truth: the I/Os that share time in flight with another of their sector.
        let mut by_sector: std::collections::HashMap<u64, Vec<synthetic::Io>> = Default::default();
        for io in &ios {
            by_sector.entry(io.sector).or_default().push(*io);
        }
        // An I/O that starts at the very time stamp another one of its sector completes
        // may be taken either way (their order across CPUs is not defined): `alone`
        // counts those as overlapping, `alone_or_touching` as alone.
        let alone_if = |touching_overlaps: bool| {
            let mut set = std::collections::HashSet::new();
            for list in by_sector.values() {
                for a in list {
                    let overlaps = |b: &&synthetic::Io| {
                        *b != a
                            && if touching_overlaps {
                                b.start <= a.end && a.start <= b.end
                            } else {
                                b.start < a.end && a.start < b.end
                            }
                    };
                    if !list.iter().any(|b| overlaps(&b)) {
                        set.insert(*a);
                    }
                }
            }
            set
        };
        let (alone, alone_or_touching) = (alone_if(true), alone_if(false));
        let decoder = BlockDecoder::from_formats(None, &issue, &done).unwrap();
        for (detail, (got, dropped, overlapped)) in [
            ("full", pair_lossy::<Full>(&decoder, &pages, &layout, batch)),
            ("lean", pair_lossy::<Lean>(&decoder, &pages, &layout, batch)),
        ] {
            let got: std::collections::HashSet<synthetic::Io> = got.into_iter().collect();
            prop_assert_eq!(dropped, 0, "{}", detail);
            prop_assert!(
                got.is_subset(&alone_or_touching) && alone.is_subset(&got),
                "{}: timed I/Os are exactly those alone in flight", detail
            );
            prop_assert_eq!(overlapped, (ios.len() - got.len()) as u64, "{}", detail);
        }
    }
}

/// Replays lossy `pages` through a pipeline keeping detail `D`: the I/Os it reports
/// (sector, start and completion time), the I/Os it dropped at gaps, and those it did
/// not time because another I/O of their sector was in flight.
fn pair_lossy<D: Detail>(
    decoder: &BlockDecoder,
    pages: &[Vec<Vec<u8>>],
    layout: &PageLayout,
    batch: usize,
) -> (Vec<synthetic::Io>, u64, u64) {
    let mut pipe = BlockPipeline::<D>::new(decoder.clone(), StartPoint::Issue);
    let mut got = Vec::new();
    synthetic::replay(pages, layout, batch, &mut pipe, |pipe, wm| {
        pipe.release(
            wm,
            |_| true,
            |c| {
                got.push(synthetic::Io {
                    sector: c.sector,
                    start: c.start.ts,
                    end: c.end_ts,
                })
            },
        )
    });
    (got, pipe.inflight.dropped_at_gap, pipe.inflight.overlapped)
}
