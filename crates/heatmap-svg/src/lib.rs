//! Latency heat maps, after Brendan Gregg's trace2heatmap.pl: (time, latency) points
//! are counted in a grid of cells (memory grows with the cells, never with the
//! points, so any number of points can be streamed in) and rendered as an interactive
//! SVG 1.1 image: hover a cell for its time range, latency range and count, click it to
//! highlight it; lines mark each column's p50 and p99, a legend gives the colour scale.
//!
//! ```
//! use perf_tools_heatmap::{Grid, GridOptions, Style};
//! let mut grid = Grid::new(GridOptions { max_lat: Some(100.0), rows: 10, ..Default::default() }).unwrap();
//! grid.add(0.5, 42.0);
//! grid.add(1.5, 7.0);
//! let mut svg = Vec::new();
//! perf_tools_heatmap::render(&grid, &Style::default(), &mut svg).unwrap();
//! assert_eq!(grid.count(0, 4), 1);
//! ```

pub mod grid;
pub mod io;
pub mod render;

pub use grid::{Axis, Excluded, Grid, GridOptions, OptionError};
pub use io::IoHeatmap;
pub use render::{color, color_rgb, render, Layout, Style};

use std::path::Path;

/// Writes the heat map to `path` completely or not at all: into a temporary file in
/// the same directory, synced, then renamed over `path`.
pub fn write_file(grid: &Grid, style: &Style, path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "heatmap.svg".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        render(grid, style, &mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|_| ())
}

/// Describes the points left out (for a note on stderr), or `None` if none were.
pub fn excluded_note(e: &Excluded) -> Option<String> {
    if e.total() == 0 {
        return None;
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (
            e.below_min,
            "below --minlat (or not above 0 on the --log axis)",
        ),
        (e.above_max, "above --maxlat (or beyond 10000 rows)"),
        (e.beyond_max_col, "after --maxcol"),
        (
            e.beyond_limit,
            "beyond the 10000 columns a map may span (try a larger --stepsec or --unitstime)",
        ),
        (e.not_finite, "not finite numbers"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    Some(format!(
        "{} points left out of the heat map: {}",
        e.total(),
        parts.join(", ")
    ))
}
