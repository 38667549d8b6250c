//! The `--check` of the block I/O tools (iosnoop, iolatency) and their doctor rows.

use anyhow::Result;

use crate::decode::{layout_name, BlockDecoder};

/// The `--check` of a block I/O tool (iosnoop, iolatency): tracefs, a private instance,
/// the `block_rq_issue`/`block_rq_complete` events (and `block_rq_insert` for `-Q`,
/// `block_rq_requeue` to know a requeued request started again) with a layout the
/// decoder reads, and the events enabled once to see the kernel take them.
/// Everything created is removed before it returns.
pub fn check(tool: &str) -> Result<perf_tools_core::check::Report> {
    use perf_tools_core::check::{Report, Status};
    use perf_tools_ftrace::check as fc;
    let mut report = Report::new(tool);
    let Some(tracefs) = fc::tracefs(&mut report) else {
        return Ok(report);
    };
    let Some(inst) = fc::instance(&tracefs, tool, &mut report) else {
        return Ok(report);
    };
    let fix =
        "use a kernel built with CONFIG_BLOCK=y and CONFIG_EVENT_TRACING=y (block tracepoints)";
    let dir = inst.dir().to_path_buf();
    let issue = fc::event(&mut report, &dir, "block", "block_rq_issue", true, fix);
    let complete = fc::event(&mut report, &dir, "block", "block_rq_complete", true, fix);
    let insert = fc::event(
        &mut report,
        &dir,
        "block",
        "block_rq_insert",
        false,
        "none needed: -Q (queue time) is unavailable without it",
    );
    let requeue = fc::event(
        &mut report,
        &dir,
        "block",
        "block_rq_requeue",
        false,
        "none needed: a requeued request's second start then counts as another I/O of its sector (neither is timed)",
    );
    if let (Some(issue), Some(complete)) = (&issue, &complete) {
        let decoder =
            BlockDecoder::from_formats(insert.as_ref(), issue, complete).and_then(
                |d| match &requeue {
                    Some(r) => d.with_requeue(r),
                    None => Ok(d),
                },
            );
        match decoder {
            Ok(_) => {
                report.item(
                    "layout",
                    Status::Yes,
                    format!(
                        "{}; decoded by field name (dev, sector, nr_sector, rwbs, comm)",
                        layout_name(issue)
                    ),
                    "",
                    true,
                );
            }
            Err(e) => {
                report.item(
                    "layout",
                    Status::No,
                    format!("{e:#}"),
                    "report this kernel's block_rq_* format files as a bug of perf-tools-rs",
                    true,
                );
            }
        }
        let mut events = vec![("block", "block_rq_issue"), ("block", "block_rq_complete")];
        if insert.is_some() {
            events.push(("block", "block_rq_insert"));
        }
        if requeue.is_some() {
            events.push(("block", "block_rq_requeue"));
        }
        fc::verify_recording(&inst, &events, &mut report);
    }
    inst.remove()?;
    report.uses = if report.verdict() == Status::No {
        "block tracepoints unavailable".to_string()
    } else if insert.is_some() {
        "block_rq_issue/block_rq_complete (block_rq_insert for -Q) in a private instance"
            .to_string()
    } else {
        "block_rq_issue/block_rq_complete in a private instance (no -Q)".to_string()
    };
    Ok(report)
}
