//! heatmap's SVG as a real browser draws it: headless Chromium renders a map of known
//! counts to PNG, and the pixels at the centres of known cells have the cells' colours
//! (hot cells red, cooler ones lighter, empty ones white).
//!
//! Needs the `chromium` package (scripts/test.sh installs it); without it the test is
//! skipped, except under CI where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use perf_tools_heatmap::{color_rgb, Grid, GridOptions, Layout, Style};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// Renders `svg` (of size w x h) to PNG with headless Chromium: RGB rows.
fn screenshot(browser: &Path, dir: &Path, svg: &Path, w: u32, h: u32) -> Vec<Vec<(u8, u8, u8)>> {
    let png = dir.join("shot.png");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--default-background-color=00000000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", svg.display()))
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "chromium failed: {st}");
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        t => panic!("unexpected PNG colour type {t:?}"),
    };
    assert!(
        info.width >= w && info.height >= h,
        "{}x{}",
        info.width,
        info.height
    );
    (0..info.height as usize)
        .map(|y| {
            let row = &buf[y * info.line_size..];
            (0..info.width as usize)
                .map(|x| (row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]))
                .collect()
        })
        .collect()
}

#[test]
fn chromium_draws_hot_cells_hot_and_empty_cells_white() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed (scripts/test.sh installs it: apt-get install chromium)"
            );
        }
        eprintln!("SKIPPED chromium_draws_hot_cells_hot_and_empty_cells_white: no chromium (apt-get install chromium)");
        return;
    };
    // Known cells (column, row, count) on a 0-100 axis of 10 rows.
    let cells = [
        (0usize, 0usize, 3u64),
        (2, 3, 40),
        (5, 7, 20),
        (8, 1, 1),
        (8, 9, 10),
        (12, 0, 5),
    ];
    let mut input = String::new();
    for &(c, r, n) in &cells {
        for i in 0..n {
            // Spread inside the cell: time c + 0.1..0.9 s, latency r*10 + 1..9.
            let t = 1000.0 + c as f64 + 0.8 * (i as f64 / n as f64);
            let l = r as f64 * 10.0 + 1.0 + (i % 9) as f64;
            input.push_str(&format!("{t:.3} {l}\n"));
        }
    }
    let args = ["--maxlat=100", "--rows=10", "--boxsize=10"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_heatmap"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // The same map through the library, for its geometry.
    let mut grid = Grid::new(GridOptions {
        max_lat: Some(100.0),
        rows: 10,
        ..Default::default()
    })
    .unwrap();
    for line in input.lines() {
        let mut f = line.split(' ').map(|v| v.parse::<f64>().unwrap());
        grid.add(f.next().unwrap(), f.next().unwrap());
    }
    for &(c, r, n) in &cells {
        assert_eq!(grid.count(c, r), n);
    }
    let style = Style {
        boxsize: 10,
        ..Default::default()
    };
    let layout = Layout::new(&grid, &style);
    let dir = std::env::temp_dir().join(format!("heatmap-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("map.svg");
    std::fs::write(&svg, &out.stdout).unwrap();
    let px = screenshot(&browser, &dir, &svg, layout.width, layout.height);
    let _ = std::fs::remove_dir_all(&dir);
    let at = |c: usize, r: usize| {
        let (x, y) = layout.cell(c, r);
        let (cx, cy) = ((x + 5.0) as usize, (y + 5.0) as usize);
        px[cy][cx]
    };
    let near = |a: (u8, u8, u8), b: (u8, u8, u8)| {
        (a.0 as i32 - b.0 as i32).abs() <= 3
            && (a.1 as i32 - b.1 as i32).abs() <= 3
            && (a.2 as i32 - b.2 as i32).abs() <= 3
    };
    for &(c, r, n) in &cells {
        let want = color_rgb(n, 40);
        assert!(
            near(at(c, r), want),
            "cell {c},{r} ({n}): {:?}, want {want:?}",
            at(c, r)
        );
    }
    // The hottest is pure red, the single one nearly white but not white.
    assert_eq!(color_rgb(40, 40), (255, 0, 0));
    assert!(near(at(2, 3), (255, 0, 0)));
    assert!(at(8, 1) != (255, 255, 255));
    // Empty cells (inside the map, not the text) are white.
    for (c, r) in [(0, 5), (3, 3), (2, 4), (7, 7), (10, 2), (11, 9), (4, 8)] {
        assert_eq!(grid.count(c, r), 0);
        assert!(
            near(at(c, r), (255, 255, 255)),
            "empty cell {c},{r}: {:?}",
            at(c, r)
        );
    }
}

/// The interactive part runs in Chromium: hovering a cell shows its time range, latency
/// range and counts; leaving clears it; a click highlights the cell, a second click
/// clears that. A probe script appended to the SVG drives the events and leaves what
/// it saw in an attribute, read back from the DOM Chromium dumps.
#[test]
fn chromium_runs_the_hover_and_click_script() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is not installed (scripts/test.sh installs it: apt-get install chromium)"
            );
        }
        eprintln!("SKIPPED chromium_runs_the_hover_and_click_script: no chromium");
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_heatmap"))
        .args([
            "--maxlat=10",
            "--rows=10",
            "--unitslabel=ms",
            "--accstats",
            "--stepsec=0.5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"0 5\n0.5 7\n2 9\n2.1 9\n2.2 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let svg = String::from_utf8(out.stdout).unwrap();
    let probe = r#"<script type="text/ecmascript"><![CDATA[
init(null);
var cells = document.getElementById("cells").getElementsByTagName("rect");
var r = cells[cells.length - 1];
r.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
var hover = details.nodeValue;
r.dispatchEvent(new MouseEvent("mouseout", {bubbles: true}));
var left = details.nodeValue;
r.dispatchEvent(new MouseEvent("click", {bubbles: true}));
var once = r.getAttribute("class");
r.dispatchEvent(new MouseEvent("click", {bubbles: true}));
var twice = r.getAttribute("class");
document.getElementById("bkg").setAttribute("title", hover + "|" + left + "|" + once + "|" + twice);
]]></script>
</svg>
"#;
    let probed = svg.replacen("</svg>\n", probe, 1);
    let dir = std::env::temp_dir().join(format!("heatmap-js-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("probe.svg");
    std::fs::write(&path, probed).unwrap();
    let dump = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("file://{}", path.display()))
        .env("HOME", &dir)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let dom = String::from_utf8_lossy(&dump.stdout);
    // The last cell: column 4 (2.0-2.5 s), row 9 (9-10 ms), 2 of the column's 3 events,
    // 3 accumulated up to that row.
    assert!(
        dom.contains(r#"title="time 2-2.5s, latency 9-10ms, count 2 (66% of column), acc 3 (100%)| |hl|null""#),
        "{dom}"
    );
}
