//! Reading back a heat map SVG written by `--heatmap` (perf-tools-heatmap): parsed as
//! XML (so a truncated or malformed file fails), its cells' counts summed.

use std::path::Path;

/// The cells of the heat map in the SVG file at `path`: (column, row, count), from
/// the hover calls `s(column,row,count[,acc])` of the rectangles in `g#cells`. Panics
/// if the file is missing, not well-formed XML or not an SVG 1.1 heat map.
pub fn cells(path: &Path) -> Vec<(usize, usize, u64)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("heat map {}: {e}", path.display()));
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("heat map {} is not well-formed XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("version"), Some("1.1"));
    let g = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("cells"))
        .unwrap_or_else(|| panic!("heat map {}: no g#cells", path.display()));
    g.children()
        .filter(|n| n.is_element())
        .map(|r| {
            let call = r.attribute("onmouseover").expect("cell hover call");
            let v: Vec<u64> = call
                .trim_start_matches("s(")
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.parse().expect("number"))
                .collect();
            (v[0] as usize, v[1] as usize, v[2])
        })
        .collect()
}

/// The total count of the heat map in the SVG file at `path` (see [`cells`]).
pub fn total(path: &Path) -> u64 {
    cells(path).iter().map(|c| c.2).sum()
}
