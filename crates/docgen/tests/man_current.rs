//! The checked-in man pages must equal what the clap definitions generate.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#[test]
fn man_pages_are_current() {
    let root = docgen::workspace_root();
    let mut stale = Vec::new();
    for t in docgen::tools() {
        let want = docgen::render_man(&t).unwrap();
        let have = std::fs::read_to_string(docgen::man_path(&root, t.name)).unwrap_or_default();
        if want != have {
            stale.push(t.name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages for {stale:?}: run `cargo run -p docgen` and commit man/man8"
    );
}

#[test]
fn every_page_has_the_classic_sections() {
    for t in docgen::tools() {
        let page = docgen::render_man(&t).unwrap();
        for s in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "REQUIREMENTS",
            "OPTIONS",
            "EXAMPLES",
            "OVERHEAD",
            "SEE ALSO",
        ] {
            assert!(
                page.contains(&format!(".SH {s}")),
                "{}: no {s} section",
                t.name
            );
        }
    }
}

/// The originals printed `ERROR: ...`; scripts grepped for it. Each page says how
/// errors start now (`tool: error: ...`, clap's `error: ...`).
#[test]
fn every_exit_status_section_gives_the_error_prefix() {
    for t in docgen::tools() {
        let page = docgen::render_man(&t).unwrap();
        let at = page
            .find(".SH EXIT STATUS")
            .unwrap_or_else(|| panic!("{}: no EXIT STATUS section", t.name));
        let section = &page[at..];
        let section = &section[..section[4..].find(".SH ").map_or(section.len(), |n| n + 4)];
        assert!(
            section.contains(&format!("\\%\"{}: error: ", t.name))
                && section.contains("\\%\"error: ")
                && section.contains("ERROR:"),
            "{}: EXIT STATUS does not give the error prefix:\n{section}",
            t.name
        );
    }
}
