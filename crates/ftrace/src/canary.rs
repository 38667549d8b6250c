//! Sources verified by a canary: a tool tries its sources of data best first, and uses one
//! only after it has seen a known action of its own (an open, an exec, with unique
//! arguments) come back through it exactly. The tool supplies the kernel side (a
//! [`Trial`]: set a source up, perform the canary action and collect what the source
//! showed, tear it down) and the judgement; [`choose`] does the rest the same way in
//! every tool: a source that cannot be set up, or whose canary comes back wrong (a
//! string fetch read back as `(fault)`, empty, different, or not at all), is torn down
//! and the next one tried, and every rejection is kept with its reason for `-v` and
//! `--check`.

/// One way of setting up sources and watching a canary through them (the kernel's; fakes
/// in tests). `S` names a source.
pub trait Trial<S> {
    /// What a source showed of the canary.
    type Observed;
    /// Sets up `source` with tracing on. An error says why it is unavailable.
    fn set_up(&mut self, source: S) -> anyhow::Result<()>;
    /// Performs the canary action and returns what the source showed of it.
    fn observe(&mut self) -> anyhow::Result<Self::Observed>;
    /// Removes what [`Trial::set_up`] created.
    fn tear_down(&mut self);
    /// True if a wait was cut short by a shutdown signal (or the reader of standard
    /// output going away): no further source is tried.
    fn interrupted(&self) -> bool {
        false
    }
}

/// Why a source was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<S> {
    /// The source.
    pub source: S,
    /// True if it could be set up but failed the canary check.
    pub verified: bool,
    /// Why, in one line.
    pub why: String,
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<S> {
    /// The source in use (still set up), if any works.
    pub source: Option<S>,
    /// The better sources not used, and why.
    pub rejected: Vec<Rejected<S>>,
}

/// An error on one line (for `-v` and `--check`).
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Tries `order` until a source passes `judge` (`Err` says what was wrong with what it
/// showed); leaves that one set up, every other one torn down.
pub fn choose<S: Copy, T: Trial<S>>(
    trial: &mut T,
    order: &[S],
    mut judge: impl FnMut(S, &T::Observed) -> Result<(), String>,
) -> Choice<S> {
    let mut rejected = Vec::new();
    for &source in order {
        if let Err(e) = trial.set_up(source) {
            trial.tear_down();
            rejected.push(Rejected {
                source,
                verified: false,
                why: one_line(&e),
            });
            continue;
        }
        let verdict = match trial.observe() {
            Ok(o) => judge(source, &o),
            Err(_) if trial.interrupted() => {
                trial.tear_down();
                return Choice {
                    source: None,
                    rejected,
                };
            }
            Err(e) => Err(one_line(&e)),
        };
        match verdict {
            Ok(()) => {
                return Choice {
                    source: Some(source),
                    rejected,
                }
            }
            Err(why) => {
                trial.tear_down();
                rejected.push(Rejected {
                    source,
                    verified: true,
                    why,
                });
            }
        }
    }
    Choice {
        source: None,
        rejected,
    }
}

/// Undoes what a [`Trial::set_up`] made in the kernel, the same way in every tool: tracing
/// off in the instance; the instance itself kept for the next source if nothing was
/// enabled in it (`enabled` false), removed otherwise (the next source gets a fresh one);
/// then the source's probes removed.
/// Failures are warnings: the next source, or the run's end, is still tried.
pub fn tear_down_setup(
    inst: &mut Option<crate::instance::Instance>,
    enabled: &mut bool,
    probes: &mut Vec<crate::probe::Probe>,
) {
    if let Some(i) = inst.take() {
        if let Err(e) = i.set_tracing_on(false) {
            eprintln!("warning: {e:#}");
        }
        if !*enabled {
            *inst = Some(i);
        } else if let Err(e) = i.remove() {
            eprintln!("warning: {e:#}");
        }
    }
    *enabled = false;
    for p in probes.drain(..) {
        if let Err(e) = p.remove() {
            eprintln!("warning: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Fake {
        unavailable: Vec<u8>,
        shows: fn(u8) -> &'static str,
        up: Option<u8>,
        torn: Vec<u8>,
    }

    impl Trial<u8> for Fake {
        type Observed = &'static str;
        fn set_up(&mut self, s: u8) -> anyhow::Result<()> {
            self.up = Some(s);
            if self.unavailable.contains(&s) {
                anyhow::bail!("no such probe type");
            }
            Ok(())
        }
        fn observe(&mut self) -> anyhow::Result<&'static str> {
            Ok((self.shows)(self.up.unwrap()))
        }
        fn tear_down(&mut self) {
            self.torn.extend(self.up.take());
        }
    }

    #[test]
    fn the_first_source_whose_canary_comes_back_right_is_kept() {
        let mut t = Fake {
            unavailable: vec![1],
            shows: |s| if s == 2 { "(fault)" } else { "canary" },
            up: None,
            torn: Vec::new(),
        };
        let c = choose(&mut t, &[1, 2, 3, 4], |_, o| {
            (*o == "canary")
                .then_some(())
                .ok_or(format!("read back as {o}"))
        });
        assert_eq!(c.source, Some(3));
        assert_eq!(t.torn, [1, 2]);
        assert_eq!(
            c.rejected,
            [
                Rejected {
                    source: 1,
                    verified: false,
                    why: "no such probe type".into()
                },
                Rejected {
                    source: 2,
                    verified: true,
                    why: "read back as (fault)".into()
                }
            ]
        );
    }
}
