//! The `--heatmap FILE` of the block I/O tools: every paired I/O counted as it is
//! paired (completion time, latency), the SVG written once at the end of the run,
//! completely or not at all.

use std::path::{Path, PathBuf};

use crate::{excluded_note, write_file, Grid, GridOptions, Style};

/// A heat map of block I/O latency being collected for a file.
#[derive(Debug)]
pub struct IoHeatmap {
    grid: Grid,
    style: Style,
    path: PathBuf,
}

impl IoHeatmap {
    /// A heat map for `path` (checked now: its directory must exist), titled after the
    /// tool. Time columns of one second; latency in microseconds on a log axis (4 rows
    /// per doubling: I/O latency spans orders of magnitude, and one slow I/O would
    /// squeeze a linear axis' rows into one).
    pub fn new(tool: &str, path: &Path) -> Result<IoHeatmap, String> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "--heatmap {}: directory {} does not exist",
                path.display(),
                dir.display()
            ));
        }
        if path.is_dir() {
            return Err(format!("--heatmap {}: is a directory", path.display()));
        }
        let grid = Grid::new(GridOptions {
            // Times given in seconds (ns * 1e-9: no division per I/O).
            time_factor: 1.0,
            // About 2.7 hours at one column per second; a longer run's later I/O is
            // counted as left out (and said so).
            limit_cols: 10_000,
            log: true,
            ..GridOptions::default()
        })
        .map_err(|e| e.0)?;
        Ok(IoHeatmap {
            grid,
            style: Style {
                title: format!("{tool}: block I/O latency"),
                units_label: "us".into(),
                x_title: "Time (seconds from the first I/O's completion)".into(),
                percentiles: true,
                ..Style::default()
            },
            path: path.to_path_buf(),
        })
    }

    /// Counts one I/O: completion time and latency, in nanoseconds.
    #[inline]
    pub fn add(&mut self, end_ns: u64, latency_ns: u64) {
        self.grid
            .add(end_ns as f64 * 1e-9, latency_ns as f64 * 1e-3);
    }

    /// I/Os counted in cells.
    pub fn counted(&self) -> u64 {
        self.grid.counted()
    }

    /// Writes the file (temporary file, then renamed) and says on stderr what it holds.
    pub fn finish(&self, tool: &str) -> std::io::Result<()> {
        write_file(&self.grid, &self.style, &self.path)?;
        eprintln!(
            "{tool}: heat map of {} I/O written to {}",
            self.grid.counted(),
            self.path.display()
        );
        if let Some(note) = excluded_note(&self.grid.excluded) {
            eprintln!("{tool}: note: {note}");
        }
        Ok(())
    }
}
