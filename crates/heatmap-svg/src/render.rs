//! SVG 1.1 output: one rectangle per non-empty cell, streamed to a writer.

use std::io::{self, Write};

use crate::grid::{Axis, Grid};

/// How the map looks: trace2heatmap.pl's options, with its meaning, and the extras.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Centered heading (`--title`).
    pub title: String,
    /// Latency units for labels (`--unitslabel`, any text).
    pub units_label: String,
    /// Heading under the time axis.
    pub x_title: String,
    /// Height and width of a cell in pixels (`--boxsize`).
    pub boxsize: u32,
    /// Base text size (`--fontsize`).
    pub fontsize: u32,
    /// Font family (`--fonttype`).
    pub fonttype: String,
    /// Grid lines, time labels every 10 columns, latency range labels (`--grid`).
    pub grid: bool,
    /// Accumulated count per column in the hover text (`--accstats`).
    pub accstats: bool,
    /// Lines through the cells holding each column's p50 and p99.
    pub percentiles: bool,
    /// Colour scale legend.
    pub legend: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            title: "Latency Heat Map".into(),
            units_label: String::new(),
            x_title: "Time".into(),
            boxsize: 8,
            fontsize: 12,
            fonttype: "Verdana".into(),
            grid: false,
            accstats: false,
            percentiles: true,
            legend: true,
        }
    }
}

/// Left and right padding.
pub const XPAD: u32 = 10;
/// Smallest image width.
pub const MIN_WIDTH: u32 = 500;
/// Percentile lines drawn: (fraction, label, colour).
pub const PERCENTILES: [(f64, &str, &str); 2] = [
    (0.5, "p50", "rgb(0,90,200)"),
    (0.99, "p99", "rgb(120,0,160)"),
];
/// Swatches in the colour legend.
pub const LEGEND_SWATCHES: u32 = 10;

/// Where things are drawn (pixels), from the grid's size and the style.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Top of the map (the top of the highest row).
    pub top: f64,
    /// Bottom of the map (the bottom of row 0).
    pub bottom: f64,
    /// Left edge of column 0.
    pub left: f64,
    /// Cell size.
    pub boxsize: f64,
}

impl Layout {
    /// The layout of `grid` drawn in `style`.
    pub fn new(grid: &Grid, style: &Style) -> Layout {
        let fs = style.fontsize as f64;
        let b = style.boxsize as f64;
        let top = fs * 3.0;
        let bottom = top + grid.rows() as f64 * b;
        let mut below = fs * 4.5;
        if style.grid {
            below += fs * 1.2;
        }
        if style.legend {
            below += fs * 1.8;
        }
        let width = (grid.columns() as u32 * style.boxsize + 2 * XPAD).max(MIN_WIDTH);
        Layout {
            width,
            height: (bottom + below).ceil() as u32,
            top,
            bottom,
            left: XPAD as f64,
            boxsize: b,
        }
    }

    /// Top-left corner of cell (column, row).
    pub fn cell(&self, col: usize, row: usize) -> (f64, f64) {
        (
            self.left + col as f64 * self.boxsize,
            self.bottom - (row as f64 + 1.0) * self.boxsize,
        )
    }
}

/// The fill of a cell holding `count` of at most `largest` (trace2heatmap.pl's linear
/// white-yellow-red scale): `rgb(255,255,255)` for none, red for the largest.
pub fn color(count: u64, largest: u64) -> String {
    if count == 0 || largest == 0 {
        return "rgb(255,255,255)".to_string();
    }
    let ratio = count as f64 / largest as f64;
    let g = 240.0 - 240.0 * ratio;
    let b = 220.0 - 220.0 * ratio;
    format!("rgb(255,{:.0},{:.0})", g, b)
}

/// The RGB of [`color`] as numbers (for checks of rendered images).
pub fn color_rgb(count: u64, largest: u64) -> (u8, u8, u8) {
    if count == 0 || largest == 0 {
        return (255, 255, 255);
    }
    let ratio = count as f64 / largest as f64;
    (
        255,
        (240.0 - 240.0 * ratio).round_ties_even() as u8,
        (220.0 - 220.0 * ratio).round_ties_even() as u8,
    )
}

/// Text escaped for XML character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// Text as a JavaScript string literal that is safe inside CDATA.
fn js_string(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' | '<' | '>' | '&' | '\'' => o.push_str(&format!("\\u{:04x}", ch as u32)),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                o.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A number for a label: integers as such, else at most 4 significant digits.
pub fn label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (3 - mag).clamp(0, 12) as usize;
    let s = format!("{:.*}", decimals, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Writes the heat map of `grid` as a standalone SVG 1.1 document.
pub fn render<W: Write>(grid: &Grid, style: &Style, out: &mut W) -> io::Result<()> {
    let l = Layout::new(grid, style);
    let (w, h) = (l.width, l.height);
    let fs = style.fontsize as f64;
    let font = xml_escape(&style.fonttype);
    let units = &style.units_label;
    let rows = grid.rows();
    let cols = grid.columns();
    let largest = grid.largest();
    let step = grid.options().step_sec;

    writeln!(out, r#"<?xml version="1.0" standalone="no"?>"#)?;
    writeln!(
        out,
        r#"<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">"#
    )?;
    writeln!(
        out,
        r#"<svg version="1.1" width="{w}" height="{h}" onload="init(evt)" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">"#
    )?;
    writeln!(
        out,
        "<!-- Latency heat map (perf-tools-rs). Hover a cell for its time, latency range and count; click to highlight it. -->"
    )?;
    writeln!(
        out,
        "<style type=\"text/css\"><![CDATA[\n#cells rect:hover {{ stroke:black; stroke-width:0.5; }}\n#cells rect.hl {{ stroke:rgb(0,160,0); stroke-width:2; }}\n]]></style>"
    )?;
    // Script data: row bounds, column totals, step, units.
    let mut bounds = String::with_capacity(rows * 8 + 8);
    for r in 0..=rows {
        if r > 0 {
            bounds.push(',');
        }
        bounds.push_str(&js_string(&label(grid.row_bound(r))));
    }
    let mut totals = String::with_capacity(cols * 4);
    for c in 0..cols {
        if c > 0 {
            totals.push(',');
        }
        totals.push_str(&grid.column(c).iter().sum::<u64>().to_string());
    }
    writeln!(out, "<script type=\"text/ecmascript\"><![CDATA[")?;
    writeln!(
        out,
        "var RB=[{bounds}];\nvar CT=[{totals}];\nvar ST={step};\nvar U={u};",
        u = js_string(units)
    )?;
    out.write_all(SCRIPT.as_bytes())?;
    writeln!(out, "]]></script>")?;
    writeln!(
        out,
        r#"<rect x="0" y="0" width="{w}" height="{h}" fill="rgb(255,255,255)" id="bkg"/>"#
    )?;
    writeln!(
        out,
        r#"<text text-anchor="middle" x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)">{}</text>"#,
        w / 2,
        fs * 2.0,
        style.fontsize + 5,
        xml_escape(&style.title)
    )?;
    writeln!(
        out,
        r#"<text text-anchor="middle" x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)">{}</text>"#,
        w / 2,
        h as f64 - fs + 2.0,
        style.fontsize,
        xml_escape(&style.x_title)
    )?;
    let mut y = l.bottom;
    if style.grid {
        y += fs * 1.2;
    }
    let details = if grid.counted() == 0 {
        "no data".to_string()
    } else {
        " ".to_string()
    };
    writeln!(
        out,
        r#"<text x="{XPAD}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)" id="details">{details}</text>"#,
        y + fs * 1.5,
        style.fontsize
    )?;

    if style.grid && cols > 0 && rows > 0 {
        let grey = "rgb(230,230,230)";
        let right = l.left + cols as f64 * l.boxsize;
        for yy in [l.top, l.bottom] {
            writeln!(
                out,
                r#"<line x1="{}" y1="{yy}" x2="{right}" y2="{yy}" stroke="{grey}" stroke-width="1"/>"#,
                l.left
            )?;
        }
        for c in (0..=cols).step_by(10) {
            let x = l.left + c as f64 * l.boxsize;
            writeln!(
                out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{grey}" stroke-width="1"/>"#,
                l.top, l.bottom
            )?;
            writeln!(
                out,
                r#"<text x="{x}" y="{}" font-size="{}" font-family="{font}" fill="rgb(190,190,190)">{}s</text>"#,
                l.bottom + fs,
                style.fontsize,
                label(c as f64 * step)
            )?;
        }
    }

    // The cells: column by column, rows bottom up (hover and click handled per cell).
    writeln!(out, r#"<g id="cells" onmouseout="c()" onclick="h(evt)">"#)?;
    let b = style.boxsize;
    let mut line = String::with_capacity(160);
    for ci in 0..cols {
        let col = grid.column(ci);
        let mut acc = 0u64;
        for (r, &n) in col.iter().enumerate() {
            if n == 0 {
                continue;
            }
            acc += n;
            let (x, yy) = l.cell(ci, r);
            line.clear();
            use std::fmt::Write as _;
            let _ = write!(
                line,
                r#"<rect x="{x}" y="{yy}" width="{b}" height="{b}" fill="{}" onmouseover="s({ci},{r},{n}"#,
                color(n, largest)
            );
            if style.accstats {
                let _ = write!(line, ",{acc}");
            }
            line.push_str(")\"/>\n");
            out.write_all(line.as_bytes())?;
        }
    }
    writeln!(out, "</g>")?;

    if style.percentiles && cols > 0 {
        for (p, name, colour) in PERCENTILES {
            let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut run: Vec<(f64, f64)> = Vec::new();
            for ci in 0..cols {
                match grid.percentile_row(ci, p) {
                    Some(r) => {
                        let (x, yy) = l.cell(ci, r);
                        run.push((x + l.boxsize / 2.0, yy + l.boxsize / 2.0));
                    }
                    None => {
                        if !run.is_empty() {
                            runs.push(std::mem::take(&mut run));
                        }
                    }
                }
            }
            if !run.is_empty() {
                runs.push(run);
            }
            writeln!(out, r#"<g id="{name}" pointer-events="none">"#)?;
            for run in runs {
                let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x},{y}")).collect();
                if pts.len() == 1 {
                    let (x, y) = run[0];
                    writeln!(
                        out,
                        r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="1.5"/>"#,
                        x - l.boxsize / 2.0,
                        x + l.boxsize / 2.0
                    )?;
                } else {
                    writeln!(
                        out,
                        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                        pts.join(" ")
                    )?;
                }
            }
            writeln!(out, "</g>")?;
        }
    }

    if (style.grid || rows > 0) && grid.counted() > 0 {
        // Latency range: the bottom and top bounds, inside the map.
        let ax = match grid.axis() {
            Axis::Log { .. } => " (log)",
            Axis::Linear { .. } => "",
        };
        writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(60,60,60)">{}{}</text>"#,
            l.left + 5.0,
            l.bottom - 4.0,
            style.fontsize,
            xml_escape(&label(grid.row_bound(0))),
            xml_escape(units)
        )?;
        writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(60,60,60)">{}{}{ax}</text>"#,
            l.left + 5.0,
            l.top + fs,
            style.fontsize,
            xml_escape(&label(grid.row_bound(rows))),
            xml_escape(units)
        )?;
    }

    if style.legend {
        let ly = y + fs * 3.0;
        let mut x = XPAD as f64;
        writeln!(
            out,
            r#"<g id="legend"><text x="{x}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)">count 1</text>"#,
            ly + fs * 0.8,
            style.fontsize
        )?;
        x += fs * 4.5;
        let sw = fs;
        for i in 1..=LEGEND_SWATCHES {
            let n = (largest.max(1) * i as u64).div_ceil(LEGEND_SWATCHES as u64);
            writeln!(
                out,
                r#"<rect x="{x}" y="{ly}" width="{sw}" height="{fs}" fill="{}" stroke="rgb(190,190,190)" stroke-width="0.5"/>"#,
                color(n, largest.max(1))
            )?;
            x += sw;
        }
        writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)">{}</text>"#,
            x + 4.0,
            ly + fs * 0.8,
            style.fontsize,
            largest
        )?;
        x += fs * (largest.to_string().len() as f64 * 0.7 + 1.5);
        if style.percentiles {
            for (_, name, colour) in PERCENTILES {
                writeln!(
                    out,
                    r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1.5"/>"#,
                    ly + fs / 2.0,
                    x + fs * 1.5,
                    ly + fs / 2.0
                )?;
                writeln!(
                    out,
                    r#"<text x="{}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)">{name}</text>"#,
                    x + fs * 1.8,
                    ly + fs * 0.8,
                    style.fontsize
                )?;
                x += fs * 5.0;
            }
        }
        writeln!(
            out,
            r#"<text x="{x}" y="{}" font-size="{}" font-family="{font}" fill="rgb(0,0,0)" id="total">{} events</text></g>"#,
            ly + fs * 0.8,
            style.fontsize,
            grid.counted()
        )?;
    }
    writeln!(out, "</svg>")?;
    out.flush()
}

/// The interactive part: hover shows a cell's time range, latency range and count,
/// a click highlights (or un-highlights) it.
const SCRIPT: &str = r#"var details;
function init(evt) { details = document.getElementById("details").firstChild; }
function n(v) { return String(Math.round(v * 1e6) / 1e6); }
function s(c, r, k, a) {
	var t = CT[c];
	var text = "time " + n(c * ST) + "-" + n((c + 1) * ST) + "s, latency " +
		RB[r] + "-" + RB[r + 1] + U + ", count " + k + " (" + Math.floor(k / t * 100) + "% of column)";
	if (a !== undefined) {
		text += ", acc " + a + " (" + Math.floor(a / t * 100) + "%)";
	}
	details.nodeValue = text;
}
function c() { details.nodeValue = " "; }
function h(evt) {
	var e = evt.target;
	if (e.tagName != "rect") { return; }
	if (e.getAttribute("class") == "hl") { e.removeAttribute("class"); }
	else { e.setAttribute("class", "hl"); }
}
"#;
