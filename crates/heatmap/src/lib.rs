//! heatmap: a latency heat map (SVG) from (time, latency) pairs.
//!
//! A port of Brendan Gregg's trace2heatmap.pl with its options and their meaning. It
//! streams: points are counted in the grid's cells as they are read, so memory grows
//! with the map's size, never with the input's. Columns can also be picked by name
//! from a header line (iosnoop -ts, funcslower output ...), lines that are not numbers
//! are counted and reported, never mixed in, and extras draw a log latency axis and
//! each column's p50/p99.

use anyhow::{Context, Result};
use clap::Parser;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};

use perf_tools_core::cli;
use perf_tools_heatmap::{excluded_note, render, Grid, GridOptions, Style};

/// Command-line options (trace2heatmap.pl's, plus long-only extras).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "heatmap",
    version,
    about = "Latency heat map (interactive SVG) from time and latency pairs",
    after_help = "Examples:\n  heatmap trace.txt > heatmap.svg                        # \"time latency\" lines, seconds\n  heatmap --unitstime=us --unitslabel=us trace.txt > h.svg\n  iosnoop -ts 10 | heatmap --time-col ENDs --lat-col LATms --unitslabel=ms > io.svg\n  heatmap --log --percentiles --unitstime=ns trace.txt > h.svg\n\nSee the heatmap(8) man page for more."
)]
pub struct Args {
    /// Title text
    #[arg(long, value_name = "TEXT", default_value = "Latency Heat Map")]
    pub title: String,
    /// Units of the time column: s, ms, us or ns
    #[arg(long = "unitstime", value_name = "UNITS", default_value = "s", value_parser = ["s", "ms", "us", "ns"])]
    pub units_time: String,
    /// Units of the latency column, for labels (any text)
    #[arg(long = "unitslabel", value_name = "TEXT", default_value = "")]
    pub units_label: String,
    /// Minimum latency to include
    #[arg(
        long = "minlat",
        value_name = "LAT",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub min_lat: f64,
    /// Maximum latency to include (default: the largest in the input)
    #[arg(long = "maxlat", value_name = "LAT")]
    pub max_lat: Option<f64>,
    /// Number of latency rows (with --maxlat: step int((maxlat - minlat) / rows); without: at most this many rows of a power-of-two step)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = cli::between::<usize>("--rows", 1, 10_000))]
    pub rows: usize,
    /// Latency step per row, instead of --rows
    #[arg(long = "steplat", value_name = "LAT")]
    pub step_lat: Option<f64>,
    /// Seconds per column (fractions ok)
    #[arg(long = "stepsec", value_name = "SECONDS", default_value_t = 1.0)]
    pub step_sec: f64,
    /// Maximum column to draw, counting from 0 (later points are left out, and counted)
    #[arg(long = "maxcol", value_name = "N")]
    pub max_col: Option<u64>,
    /// Cell size in pixels
    #[arg(long, value_name = "PIXELS", default_value_t = 8, value_parser = cli::between::<u32>("--boxsize", 1, 200))]
    pub boxsize: u32,
    /// Base font size
    #[arg(long, value_name = "SIZE", default_value_t = 12, value_parser = cli::between::<u32>("--fontsize", 1, 200))]
    pub fontsize: u32,
    /// Font family
    #[arg(long, value_name = "FONT", default_value = "Verdana")]
    pub fonttype: String,
    /// Draw grid lines, time labels every 10 columns
    #[arg(long)]
    pub grid: bool,
    /// Show per-column accumulated counts and percentages in the hover text
    #[arg(long)]
    pub accstats: bool,
    /// Log latency axis (4 rows per doubling)
    #[arg(long)]
    pub log: bool,
    /// Draw lines through the cells holding each column's p50 and p99
    #[arg(long)]
    pub percentiles: bool,
    /// Take the time from the column with this header name (or 1-based number)
    #[arg(long = "time-col", value_name = "NAME")]
    pub time_col: Option<String>,
    /// Take the latency from the column with this header name (or 1-based number)
    #[arg(long = "lat-col", value_name = "NAME")]
    pub lat_col: Option<String>,
    /// Input files ("-" or none: standard input)
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
}

/// The clap definition (for man pages and completions).
pub fn command() -> clap::Command {
    cli::command::<Args>()
}

/// The divisor that turns a time in `units` into seconds.
pub fn time_factor(units: &str) -> Option<f64> {
    match units {
        "s" => Some(1.0),
        "ms" => Some(1e3),
        "us" => Some(1e6),
        "ns" => Some(1e9),
        _ => None,
    }
}

/// The grid options of `args`.
pub fn grid_options(args: &Args) -> Result<GridOptions> {
    Ok(GridOptions {
        time_factor: time_factor(&args.units_time).ok_or_else(|| {
            cli::usage(format!(
                "can't parse time units {:?}: use s, ms, us or ns",
                args.units_time
            ))
        })?,
        step_sec: args.step_sec,
        min_lat: args.min_lat,
        max_lat: args.max_lat,
        rows: args.rows,
        step_lat: args.step_lat,
        log: args.log,
        max_col: args.max_col,
        limit_cols: 10_000,
    })
}

/// The drawing style of `args`.
pub fn style(args: &Args) -> Style {
    Style {
        title: args.title.clone(),
        units_label: args.units_label.clone(),
        boxsize: args.boxsize,
        fontsize: args.fontsize,
        fonttype: args.fonttype.clone(),
        grid: args.grid,
        accstats: args.accstats,
        percentiles: args.percentiles,
        ..Style::default()
    }
}

/// Which fields hold the time and the latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A 0-based field number.
    Index(usize),
    /// A header name (found in a header line).
    Name(String),
}

impl Column {
    fn parse(s: &str) -> Column {
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Column::Index(n - 1),
            _ => Column::Name(s.to_string()),
        }
    }
}

/// Input lines read, by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Points handed to the grid.
    pub points: u64,
    /// Header lines (skipped).
    pub headers: u64,
    /// Lines before a file's header, when columns are picked by name (skipped).
    pub preamble: u64,
    /// Empty lines.
    pub empty: u64,
    /// Lines whose time or latency field is missing or not a number.
    pub bad: u64,
    /// Where the first bad line was, and its text.
    pub first_bad: Option<String>,
}

/// Reads `time latency` lines into the grid.
pub struct Reader {
    time: Column,
    lat: Column,
    /// Fields of time and latency once known.
    at: Option<(usize, usize)>,
    /// The tally so far.
    pub tally: Tally,
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r' || b == b'\x0b' || b == b'\x0c'
}

fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| is_space(b)).filter(|f| !f.is_empty())
}

fn number(field: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(field).ok()?;
    // Rust also parses "inf", "nan" and "infinity": not numbers in a trace.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

impl Reader {
    /// A reader taking the time and latency from `time_col` and `lat_col` (names or
    /// 1-based numbers; default fields 1 and 2).
    pub fn new(time_col: Option<&str>, lat_col: Option<&str>) -> Reader {
        let time = time_col.map(Column::parse).unwrap_or(Column::Index(0));
        let lat = lat_col.map(Column::parse).unwrap_or(Column::Index(1));
        let at = match (&time, &lat) {
            (Column::Index(a), Column::Index(b)) => Some((*a, *b)),
            _ => None,
        };
        Reader {
            time,
            lat,
            at,
            tally: Tally::default(),
        }
    }

    fn by_name(&self) -> bool {
        matches!(self.time, Column::Name(_)) || matches!(self.lat, Column::Name(_))
    }

    /// The field numbers of the time and latency if `line` is a header naming them.
    fn header(&self, line: &[u8]) -> Option<(usize, usize)> {
        let f: Vec<&[u8]> = fields(line).collect();
        let find = |c: &Column| match c {
            Column::Index(i) => Some(*i),
            Column::Name(n) => f.iter().position(|x| *x == n.as_bytes()),
        };
        Some((find(&self.time)?, find(&self.lat)?))
    }

    /// Reads one input (`name` for messages) to its end, into `grid`.
    pub fn read<R: Read>(&mut self, input: R, name: &str, grid: &mut Grid) -> io::Result<()> {
        let mut r = BufReader::with_capacity(1 << 16, input);
        let mut line = Vec::with_capacity(256);
        let by_name = self.by_name();
        if by_name {
            // Each file names its own columns.
            self.at = None;
        }
        let mut first = true;
        let mut lineno = 0u64;
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            lineno += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if text.iter().all(|&b| is_space(b)) {
                self.tally.empty += 1;
                continue;
            }
            let letters = text.iter().any(|b| b.is_ascii_alphabetic());
            if by_name && letters {
                if let Some(at) = self.header(text) {
                    self.at = Some(at);
                    self.tally.headers += 1;
                    continue;
                }
                if self.at.is_none() {
                    self.tally.preamble += 1;
                    continue;
                }
            }
            if !by_name && first && letters {
                // trace2heatmap.pl: a first line with letters is a header.
                first = false;
                self.tally.headers += 1;
                continue;
            }
            first = false;
            let point = self.at.and_then(|(ti, li)| {
                let mut t = None;
                let mut l = None;
                for (i, f) in fields(text).enumerate() {
                    if i == ti {
                        t = Some(number(f)?);
                    }
                    if i == li {
                        l = Some(number(f)?);
                    }
                    if i >= ti && i >= li {
                        break;
                    }
                }
                Some((t?, l?))
            });
            match point {
                Some((t, l)) => {
                    grid.add(t, l);
                    self.tally.points += 1;
                }
                None => {
                    self.tally.bad += 1;
                    if self.tally.first_bad.is_none() {
                        let shown = String::from_utf8_lossy(&text[..text.len().min(160)]);
                        self.tally.first_bad =
                            Some(format!("{name}:{lineno}: {}", shown.escape_debug()));
                    }
                }
            }
        }
        if by_name && self.at.is_none() && self.tally.points == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{name}: no header line names the columns {} (the header names are matched exactly, e.g. --time-col ENDs --lat-col LATms for iosnoop -ts)",
                    self.wanted()
                ),
            ));
        }
        Ok(())
    }

    fn wanted(&self) -> String {
        [&self.time, &self.lat]
            .iter()
            .map(|c| match c {
                Column::Index(i) => format!("#{}", i + 1),
                Column::Name(n) => format!("{n:?}"),
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// Runs heatmap.
pub fn run(args: Args) -> Result<()> {
    let mut grid = Grid::new(grid_options(&args)?).map_err(|e| cli::usage(e.0))?;
    let mut reader = Reader::new(args.time_col.as_deref(), args.lat_col.as_deref());
    let files = if args.files.is_empty() {
        vec!["-".to_string()]
    } else {
        args.files.clone()
    };
    for f in &files {
        if f == "-" {
            reader
                .read(io::stdin().lock(), "<stdin>", &mut grid)
                .context("reading standard input")?;
        } else {
            let file = File::open(f).with_context(|| format!("cannot open {f}"))?;
            reader
                .read(file, f, &mut grid)
                .with_context(|| format!("reading {f}"))?;
        }
    }
    let t = &reader.tally;
    if t.bad > 0 {
        eprintln!(
            "heatmap: warning: {} input lines were left out: no number in the time or latency column (first: {})",
            t.bad,
            t.first_bad.as_deref().unwrap_or("?")
        );
    }
    if let Some(note) = excluded_note(&grid.excluded) {
        eprintln!("heatmap: note: {note}");
    }
    if grid.counted() == 0 {
        eprintln!(
            "heatmap: note: the heat map is empty: {} points read{}",
            t.points,
            if t.points == 0 {
                " (the input has no \"time latency\" lines)"
            } else {
                ", none in range"
            }
        );
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    render(&grid, &style(&args), &mut out)?;
    out.flush()?;
    Ok(())
}
