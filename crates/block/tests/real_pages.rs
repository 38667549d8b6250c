//! Decoding raw ring-buffer pages captured from a real 6.18 kernel
//! (see tests/fixtures/README.md and scripts/capture-pages.sh).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use perf_tools_block::{BlockDecoder, BlockEvent, What};
use perf_tools_ftrace::format::EventFormat;
use perf_tools_ftrace::ringbuf::{decode_page, Missed, PageLayout};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!("{}/../../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn decoder() -> BlockDecoder {
    let f = |n: &str| {
        EventFormat::parse(&String::from_utf8(fixture(&format!("pages/6.18/{n}.format"))).unwrap())
            .unwrap()
    };
    BlockDecoder::from_formats(None, &f("block_rq_issue"), &f("block_rq_complete")).unwrap()
}

fn layout() -> PageLayout {
    PageLayout::parse(&String::from_utf8(fixture("formats/6.18/header_page")).unwrap()).unwrap()
}

#[test]
fn time_extend_page_decodes_to_the_written_ios() {
    let page = fixture("pages/6.18/extend.bin");
    let dec = decoder();
    let mut events = Vec::new();
    let summary = decode_page(&page, &layout(), |ts, p| {
        events.push((ts, dec.decode(p).expect("known block event")))
    })
    .unwrap();
    assert_eq!(summary.missed, Missed::None);
    // 5 issues; the completion of sector 24 ran on CPU 1, so this CPU-0 page holds 4 of them.
    assert_eq!(summary.events, 9);
    let issued: Vec<u64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            BlockEvent::Start { sector, who, .. } => {
                assert_eq!(&who.comm[..3], b"dd\0");
                Some(*sector)
            }
            _ => None,
        })
        .collect();
    assert_eq!(issued, vec![8, 16, 24, 32, 40]);
    for (_, e) in &events {
        if let BlockEvent::Complete { what, .. } = e {
            assert_eq!(what.nr_sector, 8, "4 KiB");
            assert_eq!(&what.rwbs[..3], b"WS\0");
        }
    }
    // Issues were 200 ms apart: only right if the time extends were applied.
    let issue_ts: Vec<u64> = events
        .iter()
        .filter(|(_, e)| matches!(e, BlockEvent::Start { .. }))
        .map(|(ts, _)| *ts)
        .collect();
    for w in issue_ts.windows(2) {
        let gap = w[1] - w[0];
        assert!((150_000_000..600_000_000).contains(&gap), "gap {gap} ns");
    }
    assert!(
        events.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps ascend"
    );
}

#[test]
fn overflowed_page_reports_missed_events() {
    let page = fixture("pages/6.18/missed.bin");
    let dec = decoder();
    let mut n = 0;
    let summary = decode_page(&page, &layout(), |_, p| {
        dec.decode(p).expect("known block event");
        n += 1;
    })
    .unwrap();
    match summary.missed {
        Missed::Count(c) => assert!(c > 100 && c < 6000, "missed count {c}"),
        m => panic!("expected a stored missed count, got {m:?}"),
    }
    assert!(n > 50, "a full page of events");
}

/// (timestamp as the kernel prints it, event name, "maj,min", rwbs, sector, nr_sector)
type Row = (String, &'static str, String, String, u64, u32);

/// Decodes a 6.1 page into rows comparable with the kernel's own text output.
fn decode_61(page: &str) -> Vec<Row> {
    let f = |n: &str| {
        EventFormat::parse(&String::from_utf8(fixture(&format!("pages/6.1/{n}.format"))).unwrap())
            .unwrap()
    };
    let (issue, complete) = (f("block_rq_issue"), f("block_rq_complete"));
    let layout =
        PageLayout::parse(&String::from_utf8(fixture("formats/6.1/header_page")).unwrap()).unwrap();
    let dec = BlockDecoder::from_formats(None, &issue, &complete).unwrap();
    let rwbs_issue = issue.field("rwbs").unwrap().clone();
    let nr_issue = issue.field("nr_sector").unwrap().clone();
    let mut rows = Vec::new();
    decode_page(&fixture(page), &layout, |ts, p| {
        let us = (ts + 500) / 1000; // the kernel rounds to the nearest microsecond
        let ts = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        match dec.decode(p).expect("block event") {
            BlockEvent::Start { dev, sector, .. } => rows.push((
                ts,
                "block_rq_issue",
                dev.to_string(),
                String::from_utf8_lossy(rwbs_issue.read_bytes(p)).into_owned(),
                sector,
                nr_issue.read_u64(p).unwrap() as u32,
            )),
            BlockEvent::Complete { dev, sector, what } => {
                let What { nr_sector, rwbs } = what;
                let n = rwbs.iter().position(|&b| b == 0).unwrap_or(rwbs.len());
                rows.push((
                    ts,
                    "block_rq_complete",
                    dev.to_string(),
                    String::from_utf8_lossy(&rwbs[..n]).into_owned(),
                    sector,
                    nr_sector,
                ))
            }
            e => panic!("the capture holds no requeue: {e:?}"),
        }
    })
    .unwrap();
    rows
}

/// Parses the kernel's text rendering of the same events (trace file of the capture).
fn kernel_text(rel: &str) -> Vec<Row> {
    let text = String::from_utf8(fixture(rel)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, rest) = l.split_once(": block_rq_")?;
            let ts = head.split_whitespace().last()?.to_string();
            let (name, rest) = rest.split_once(": ")?;
            let name = if name == "issue" {
                "block_rq_issue"
            } else {
                "block_rq_complete"
            };
            let w: Vec<&str> = rest.split_whitespace().collect();
            // "254,0 WS 4096 () 8 + 8 [comm]" or "254,0 WS () 8 + 8 [0]": find "SECTOR + NR".
            let plus = w.iter().position(|t| *t == "+")?;
            Some((
                ts,
                name,
                w[0].to_string(),
                w[1].to_string(),
                w[plus - 1].parse().ok()?,
                w[plus + 1].parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn linux_61_pages_decode_exactly_as_the_kernel_prints_them() {
    // extend.bin holds exactly the events of extend.txt.
    assert_eq!(
        decode_61("pages/6.1/extend.bin"),
        kernel_text("pages/6.1/extend.txt")
    );
    // full1.bin and full2.bin are consecutive full pages of the run in full.txt.
    let text = kernel_text("pages/6.1/full.txt");
    let mut decoded = decode_61("pages/6.1/full1.bin");
    decoded.extend(decode_61("pages/6.1/full2.bin"));
    assert_eq!(decoded.len(), 126);
    assert!(
        text.windows(decoded.len()).any(|w| w == decoded.as_slice()),
        "decoded pages are not a run of the kernel's text output"
    );
}
