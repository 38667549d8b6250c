//! heatmap end to end: cell counts and colours against trace2heatmap.pl's output on the
//! same input (tests/fixtures/heatmap, see its README.md), SVG structure, input handling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/heatmap")
        .join(name)
}

/// Runs heatmap with `args` and `stdin`: (exit code, stdout, stderr).
fn heatmap(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heatmap"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(data.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn parse(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse_with_options(
        svg,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("well-formed XML")
}

/// Cells of heatmap's SVG: (column, row) -> (count, fill).
fn our_cells(svg: &str) -> BTreeMap<(usize, usize), (u64, String)> {
    let doc = parse(svg);
    let g = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("cells"))
        .expect("g#cells");
    let mut m = BTreeMap::new();
    for r in g.children().filter(|n| n.is_element()) {
        assert_eq!(r.tag_name().name(), "rect");
        let call = r.attribute("onmouseover").unwrap();
        let args: Vec<u64> = call
            .strip_prefix("s(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let prev = m.insert(
            (args[0] as usize, args[1] as usize),
            (args[2], r.attribute("fill").unwrap().to_string()),
        );
        assert!(prev.is_none(), "cell drawn twice: {call}");
    }
    m
}

/// Cells of trace2heatmap.pl's SVG, placed back by its own geometry: x = 10 + col * box,
/// y = height - (ypad2 + row * box), ypad2 = 4.5 * fontsize (+ 1.2 * fontsize with --grid).
fn perl_cells(svg: &str, grid: bool) -> BTreeMap<(usize, usize), (u64, String)> {
    let doc = parse(svg);
    let root = doc.root_element();
    let height: f64 = root.attribute("height").unwrap().parse().unwrap();
    let ypad2 = 12.0 * 4.5 + if grid { 12.0 * 1.2 } else { 0.0 };
    let mut m = BTreeMap::new();
    for r in doc.descendants().filter(|n| n.tag_name().name() == "rect") {
        let Some(call) = r.attribute("onmouseover") else {
            continue;
        };
        let x: f64 = r.attribute("x").unwrap().parse().unwrap();
        let y: f64 = r.attribute("y").unwrap().parse().unwrap();
        let col = ((x - 10.0) / 8.0).round() as usize;
        let row = ((height - ypad2 - y) / 8.0).round() as usize;
        // s('time','range',count,acc,total)
        let count: u64 = call.split(',').nth(2).unwrap().parse().unwrap();
        m.insert(
            (col, row),
            (count, r.attribute("fill").unwrap().to_string()),
        );
    }
    m
}

/// The input's points as (time us, latency us).
fn input() -> Vec<(f64, f64)> {
    std::fs::read_to_string(fixture("trace-us.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect()
}

/// Compares with trace2heatmap.pl: every cell it draws has the same count and colour in
/// ours; ours draws more only in the last column and the row at maxlat, which
/// trace2heatmap.pl leaves out (its loops stop before them); and ours counts every
/// point in range.
fn compare(perl_svg: &str, args: &[&str], grid: bool, min: f64, max: f64, step_sec: f64) {
    let path = fixture("trace-us.txt");
    let mut all = args.to_vec();
    all.push(path.to_str().unwrap());
    let (code, svg, err) = heatmap(&all, "");
    assert_eq!(code, 0, "{err}");
    let ours = our_cells(&svg);
    let perl = perl_cells(perl_svg, grid);
    assert!(perl.len() > 500, "{}", perl.len());
    for (cell, v) in &perl {
        assert_eq!(ours.get(cell), Some(v), "cell {cell:?}");
    }
    let pts = input();
    let t0 = pts[0].0;
    let last_col = pts
        .iter()
        .map(|(t, _)| ((t - t0) / 1e6 / step_sec).floor() as usize)
        .max()
        .unwrap();
    let top_row = ((max - min) / 200.0).floor() as usize;
    for (cell, v) in &ours {
        if !perl.contains_key(cell) {
            assert!(
                cell.0 == last_col || cell.1 == top_row,
                "extra cell {cell:?} {v:?}"
            );
        }
    }
    let in_range = pts.iter().filter(|(_, l)| *l >= min && *l <= max).count() as u64;
    assert_eq!(ours.values().map(|v| v.0).sum::<u64>(), in_range);
    let left_out = pts.len() as u64 - in_range;
    assert!(
        err.contains(&format!("{left_out} points left out of the heat map")),
        "{err}"
    );
}

#[test]
fn counts_and_colours_match_trace2heatmap_linear() {
    let perl = std::fs::read_to_string(fixture("trace2heatmap-linear.svg")).unwrap();
    compare(
        &perl,
        &[
            "--unitstime=us",
            "--unitslabel=us",
            "--maxlat=10000",
            "--rows=50",
        ],
        false,
        0.0,
        10000.0,
        1.0,
    );
}

#[test]
fn counts_and_colours_match_trace2heatmap_steplat_stepsec_grid() {
    let perl = std::fs::read_to_string(fixture("trace2heatmap-step.svg")).unwrap();
    compare(
        &perl,
        &[
            "--unitstime=us",
            "--unitslabel=us",
            "--minlat=1000",
            "--maxlat=9000",
            "--steplat=200",
            "--stepsec=0.5",
            "--grid",
            "--accstats",
        ],
        true,
        1000.0,
        9000.0,
        0.5,
    );
}

/// Elements of SVG 1.1 this tool may write.
const SVG11: &[&str] = &[
    "svg", "style", "script", "rect", "text", "line", "polyline", "g",
];

/// Checks what an SVG 1.1 viewer relies on: the DOCTYPE, the root's version,
/// namespace, size and viewBox, known elements only, unique ids, numeric geometry
/// inside the image, and every hover call naming an existing column and row.
fn check_svg11(svg: &str) -> (f64, f64) {
    assert!(svg.starts_with("<?xml version=\"1.0\""));
    assert!(svg.contains(
        "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">"
    ));
    let doc = parse(svg);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert_eq!(root.attribute("version"), Some("1.1"));
    let w: f64 = root.attribute("width").unwrap().parse().unwrap();
    let h: f64 = root.attribute("height").unwrap().parse().unwrap();
    assert_eq!(
        root.attribute("viewBox"),
        Some(format!("0 0 {w} {h}").as_str())
    );
    let mut ids = HashSet::new();
    let script = doc
        .descendants()
        .find(|n| n.tag_name().name() == "script")
        .unwrap()
        .text()
        .unwrap()
        .to_string();
    let count_of = |name: &str| -> usize {
        let start = script.find(&format!("var {name}=[")).unwrap() + name.len() + 6;
        let end = start + script[start..].find(']').unwrap();
        script[start..end]
            .split(',')
            .filter(|s| !s.is_empty())
            .count()
    };
    let (bounds, cols) = (count_of("RB"), count_of("CT"));
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        assert!(SVG11.contains(&name), "element {name}");
        assert_eq!(n.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
        if let Some(id) = n.attribute("id") {
            assert!(ids.insert(id.to_string()), "duplicate id {id}");
        }
        for a in ["x", "y", "width", "height", "x1", "y1", "x2", "y2"] {
            if let Some(v) = n.attribute(a) {
                let v: f64 = v.parse().unwrap_or_else(|_| panic!("{name} {a}={v}"));
                assert!(v >= 0.0 && v <= w.max(h), "{name} {a}={v}");
            }
        }
        if name == "rect" {
            let x: f64 = n.attribute("x").unwrap().parse().unwrap();
            let y: f64 = n.attribute("y").unwrap().parse().unwrap();
            let rw: f64 = n.attribute("width").unwrap().parse().unwrap();
            let rh: f64 = n.attribute("height").unwrap().parse().unwrap();
            assert!(x + rw <= w && y + rh <= h, "rect outside the image");
        }
        if let Some(call) = n.attribute("onmouseover") {
            let a: Vec<usize> = call[2..call.len() - 1]
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect();
            assert!(a[0] < cols && a[1] + 1 < bounds, "{call}");
        }
    }
    for id in ["details", "cells", "bkg"] {
        assert!(ids.contains(id), "{id}");
    }
    (w, h)
}

#[test]
fn output_is_svg_1_1_in_every_mode() {
    let path = fixture("trace-us.txt");
    let p = path.to_str().unwrap();
    for args in [
        &["--unitstime=us", p][..],
        &["--unitstime=us", "--log", "--percentiles", "--grid", p],
        &[
            "--unitstime=us",
            "--maxlat=8000",
            "--accstats",
            "--percentiles",
            p,
        ],
        &[
            "--unitstime=us",
            "--title=<a & b>",
            "--unitslabel=\"q'",
            "--fonttype=A&B",
            p,
        ],
    ] {
        let (code, svg, err) = heatmap(args, "");
        assert_eq!(code, 0, "{args:?}: {err}");
        check_svg11(&svg);
        let total: u64 = our_cells(&svg).values().map(|v| v.0).sum();
        if args.contains(&"--log") {
            assert_eq!(total, 6000, "{err}");
        } else if args.contains(&"--maxlat=8000") {
            assert_eq!(
                total,
                input().iter().filter(|(_, l)| *l <= 8000.0).count() as u64
            );
        } else {
            assert_eq!(total, 6000, "{args:?}");
            assert_eq!(err, "");
        }
    }
}

#[test]
fn log_axis_leaves_out_zero_and_says_so() {
    let (code, svg, err) = heatmap(&["--log"], "0 0\n0 1\n0 1.5\n1 1000\n");
    assert_eq!(code, 0);
    // Rows from bin floor(4 log2 1) = 0: 1 -> row 0, 1.5 -> row 2, 1000 -> row 39.
    let cells: Vec<_> = our_cells(&svg).into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(cells, [((0, 0), 1), ((0, 2), 1), ((1, 39), 1)]);
    assert!(
        err.contains("1 points left out of the heat map: 1 below --minlat (or not above 0 on the --log axis)"),
        "{err}"
    );
    assert!(svg.contains(">1024 (log)<"), "top label");
}

#[test]
fn escaped_text_stays_text() {
    let (code, svg, _) = heatmap(
        &["--title=<script>x</script>&", "--unitslabel=]]></script>"],
        "1 1\n2 2\n",
    );
    assert_eq!(code, 0);
    let doc = parse(&svg);
    assert!(doc
        .descendants()
        .any(|n| n.text() == Some("<script>x</script>&")));
    assert_eq!(
        doc.descendants()
            .filter(|n| n.tag_name().name() == "script")
            .count(),
        1
    );
}

#[test]
fn bad_lines_are_counted_and_reported_never_mixed_in() {
    let input = "TIME LAT\n0 5\n0.5 7\nbogus line\n1.0 x\n\n2 9\n3\n1e400 4\n";
    let (code, svg, err) = heatmap(&["--maxlat=10", "--rows=10"], input);
    assert_eq!(code, 0, "{err}");
    let cells = our_cells(&svg);
    assert_eq!(
        cells.iter().map(|(k, v)| (*k, v.0)).collect::<Vec<_>>(),
        [((0, 5), 1), ((0, 7), 1), ((2, 9), 1)]
    );
    assert!(
        err.contains("3 input lines were left out: no number in the time or latency column (first: <stdin>:4: bogus line)"),
        "{err}"
    );
    // 1e400 is a number too large for f64: infinite, left out and counted.
    assert!(
        err.contains("1 points left out of the heat map: 1 not finite numbers"),
        "{err}"
    );
}

#[test]
fn columns_by_name_from_iosnoop_output() {
    let input = "Tracing block I/O. Ctrl-C to end.\n\
        STARTs          ENDs            COMM         PID    TYPE DEV      BLOCK        BYTES     LATms\n\
        100.000100      100.001100      dd           42     R    7,0      0            4096       1.00\n\
        100.200000      100.205000      dd           42     R    7,0      8            4096       5.00\n\
        101.500000      101.502500      kworker/0:1  7      W    7,0      16           4096       2.50\n\
        102.000000      102.000600      dd           42     R    7,0      24           4096       0.60*\n";
    let (code, svg, err) = heatmap(
        &[
            "--time-col",
            "ENDs",
            "--lat-col",
            "LATms",
            "--maxlat=10",
            "--rows=10",
            "--unitslabel=ms",
        ],
        input,
    );
    assert_eq!(code, 0, "{err}");
    let cells: Vec<_> = our_cells(&svg).into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(cells, [((0, 1), 1), ((0, 5), 1), ((1, 2), 1)]);
    assert!(err.contains("1 input lines were left out"), "{err}");
    assert!(err.contains("0.60*"), "{err}");
    // Numbers work as well as names (1-based); a name no header has is an error.
    let (code, svg2, _) = heatmap(
        &[
            "--time-col",
            "2",
            "--lat-col",
            "9",
            "--maxlat=10",
            "--rows=10",
        ],
        input,
    );
    assert_eq!(code, 0);
    assert_eq!(our_cells(&svg2).len(), 3);
    let (code, _, err) = heatmap(&["--time-col", "END", "--lat-col", "LATms"], input);
    assert_eq!(code, 1);
    assert!(
        err.contains("no header line names the columns \"END\" and \"LATms\""),
        "{err}"
    );
}

#[test]
fn files_and_stdin_together() {
    let dir = std::env::temp_dir().join(format!("heatmap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("a.txt");
    std::fs::write(&f, "10 1\n11 2\n").unwrap();
    let (code, svg, err) = heatmap(
        &["--maxlat=4", "--rows=4", f.to_str().unwrap(), "-"],
        "12 3\n",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{err}");
    let cells: Vec<_> = our_cells(&svg).into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(cells, [((0, 1), 1), ((1, 2), 1), ((2, 3), 1)]);
}

#[test]
fn empty_input_says_why() {
    let (code, svg, err) = heatmap(&[], "");
    assert_eq!(code, 0);
    check_svg11(&svg);
    assert!(our_cells(&svg).is_empty());
    assert!(
        err.contains("the heat map is empty: 0 points read"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--unitstime=h"][..],
        &["--maxlat=5", "--minlat=10"],
        &["--rows=0"],
        &["--stepsec=0"],
        &["--log", "--steplat=5"],
        &["--boxsize=0"],
    ] {
        let (code, _, err) = heatmap(args, "1 1\n");
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, _, err) = heatmap(&["/nonexistent/trace.txt"], "");
    assert_eq!(code, 1);
    assert!(err.contains("cannot open /nonexistent/trace.txt"), "{err}");
}
