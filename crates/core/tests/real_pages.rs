//! Decoding raw ring-buffer pages captured from a real 6.18 kernel
//! (see tests/fixtures/README.md and scripts/capture-pages.sh).

use perf_tools_core::block::{BlockDecoder, BlockEvent};
use perf_tools_core::format::EventFormat;
use perf_tools_core::ringbuf::{decode_page, Missed, PageLayout};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!("{}/../../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn decoder() -> BlockDecoder {
    let f = |n: &str| EventFormat::parse(&String::from_utf8(fixture(&format!("pages/6.18/{n}.format"))).unwrap()).unwrap();
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
    let summary = decode_page(&page, &layout(), |ts, p| events.push((ts, dec.decode(p).expect("known block event"))))
        .unwrap();
    assert_eq!(summary.missed, Missed::None);
    // 5 issues; the completion of sector 24 ran on CPU 1, so this CPU-0 page holds 4 of them.
    assert_eq!(summary.events, 9);
    let issued: Vec<u64> = events
        .iter()
        .filter_map(|(_, e)| match e {
            BlockEvent::Start { sector, comm, .. } => {
                assert_eq!(&comm[..3], b"dd\0");
                Some(*sector)
            }
            _ => None,
        })
        .collect();
    assert_eq!(issued, vec![8, 16, 24, 32, 40]);
    for (_, e) in &events {
        if let BlockEvent::Complete { nr_sector, rwbs, .. } = e {
            assert_eq!(*nr_sector, 8, "4 KiB");
            assert_eq!(&rwbs[..3], b"WS\0");
        }
    }
    // Issues were 200 ms apart: only right if the time extends were applied.
    let issue_ts: Vec<u64> =
        events.iter().filter(|(_, e)| matches!(e, BlockEvent::Start { .. })).map(|(ts, _)| *ts).collect();
    for w in issue_ts.windows(2) {
        let gap = w[1] - w[0];
        assert!((150_000_000..600_000_000).contains(&gap), "gap {gap} ns");
    }
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0), "timestamps ascend");
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
