//! How a run ended and its exit code, decided in one place ([`decide`]) from what the steps found.
//!
//! | exit | outcome | published? |
//! |---|---|---|
//! | 0 | `clean`: the block is complete and the stream agrees (or reconciliation is off) | yes |
//! | 1 | an error stopped the run (message on stderr); any partial upload was removed | no |
//! | 3 | `corrupt`: archive objects could not be read; they are listed, nothing is written | no |
//! | 4 | `mismatch`: the block is complete; the stream path disagrees (see the report) | yes |
//! | 5 | `empty`: no clicks for the day in the archive | no |
//! | 6 | `unreconciled`: the block is complete; Prometheus could not be read to compare | yes |
//! | 7 | `corrupt-skipped`: `--skip-corrupt` — complete except the corrupt objects' clicks | yes |
//!
//! Why a corrupt object stops the day: the block is the billing truth, and a block without an
//! object's clicks is silently wrong for every ad in it. The exporter's objects are immutable
//! and replays rewrite them byte for byte, so the usual fix is to restore the object (from a
//! bucket version or replica, or by replaying the partition from Kafka if it is still retained)
//! and rerun. When an object is lost for good, `--skip-corrupt` publishes what is left and the
//! report names what is missing.
//!
//! Exit 1 is no [`Outcome`]: a run that stops on an error has no report
//! ([`RollupError`](crate::RollupError)).

/// How a run ended, when it ended with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Corrupt,
    Mismatch,
    Empty,
    Unreconciled,
    CorruptSkipped,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::Corrupt => 3,
            Outcome::Mismatch => 4,
            Outcome::Empty => 5,
            Outcome::Unreconciled => 6,
            Outcome::CorruptSkipped => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Corrupt => "corrupt",
            Outcome::Mismatch => "mismatch",
            Outcome::Empty => "empty",
            Outcome::Unreconciled => "unreconciled",
            Outcome::CorruptSkipped => "corrupt-skipped",
        }
    }

    /// The table's "published?": the day's block is written (and uploaded, unless the run was
    /// told to keep it local). Alerts count exactly these runs as successes.
    pub fn publishes(self) -> bool {
        match self {
            Outcome::Clean
            | Outcome::Mismatch
            | Outcome::Unreconciled
            | Outcome::CorruptSkipped => true,
            Outcome::Corrupt | Outcome::Empty => false,
        }
    }
}

/// What comparing the block with the stream path said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Every campaign and ad matches.
    Agrees,
    /// The reconciliation lists differences.
    Disagrees,
    /// Prometheus could not be read (or answered nonsense).
    Unreadable,
}

/// What the steps of a run found: everything its outcome depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Findings {
    /// Archive objects that could not be read as what they claim to be.
    pub corrupt_objects: usize,
    /// `--skip-corrupt`.
    pub skip_corrupt: bool,
    /// Clicks settled for the day, valid and invalid (a day of bots alone still gets its
    /// block), valid clicks of corrupt objects included.
    pub clicks: u64,
    /// `None` when nothing was compared: reconciliation is off, or no block was written (yet).
    pub stream: Option<Stream>,
}

/// The outcome of a run that found `found`.
///
/// Whether the block is published depends on the archive alone, never on `found.stream`, so a
/// run asks before writing the block (with `stream: None`) and again after comparing it.
pub fn decide(found: &Findings) -> Outcome {
    let corrupt = found.corrupt_objects > 0;
    if corrupt && !found.skip_corrupt {
        return Outcome::Corrupt;
    }
    if found.clicks == 0 {
        return Outcome::Empty;
    }
    if corrupt {
        // The block knowingly lacks clicks: that says more than any comparison (the report
        // still holds it).
        return Outcome::CorruptSkipped;
    }
    match found.stream {
        None | Some(Stream::Agrees) => Outcome::Clean,
        Some(Stream::Disagrees) => Outcome::Mismatch,
        Some(Stream::Unreadable) => Outcome::Unreconciled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Outcome; 6] = [
        Outcome::Clean,
        Outcome::Corrupt,
        Outcome::Mismatch,
        Outcome::Empty,
        Outcome::Unreconciled,
        Outcome::CorruptSkipped,
    ];
    const STREAMS: [Option<Stream>; 4] = [
        None,
        Some(Stream::Agrees),
        Some(Stream::Disagrees),
        Some(Stream::Unreadable),
    ];

    fn found(
        corrupt_objects: usize,
        skip_corrupt: bool,
        clicks: u64,
        stream: Option<Stream>,
    ) -> Findings {
        Findings {
            corrupt_objects,
            skip_corrupt,
            clicks,
            stream,
        }
    }

    #[test]
    fn codes_names_and_publishing_are_the_table() {
        let table: Vec<(i32, &str, bool)> = ALL
            .iter()
            .map(|o| (o.exit_code(), o.as_str(), o.publishes()))
            .collect();
        assert_eq!(
            table,
            [
                (0, "clean", true),
                (3, "corrupt", false),
                (4, "mismatch", true),
                (5, "empty", false),
                (6, "unreconciled", true),
                (7, "corrupt-skipped", true),
            ]
        );
        // Exit 1 belongs to errors.
        assert!(ALL.iter().all(|o| o.exit_code() != 1));
    }

    #[test]
    fn clean_when_the_stream_agrees_or_is_not_compared() {
        assert_eq!(
            decide(&found(0, false, 10, Some(Stream::Agrees))),
            Outcome::Clean
        );
        assert_eq!(decide(&found(0, false, 10, None)), Outcome::Clean);
        // The flag alone changes nothing.
        assert_eq!(
            decide(&found(0, true, 10, Some(Stream::Agrees))),
            Outcome::Clean
        );
    }

    #[test]
    fn corrupt_objects_stop_the_day_whatever_else_was_found() {
        for clicks in [0, 10] {
            for stream in STREAMS {
                assert_eq!(
                    decide(&found(2, false, clicks, stream)),
                    Outcome::Corrupt,
                    "{clicks} clicks, {stream:?}"
                );
            }
        }
    }

    #[test]
    fn mismatch_when_the_stream_disagrees() {
        assert_eq!(
            decide(&found(0, false, 10, Some(Stream::Disagrees))),
            Outcome::Mismatch
        );
    }

    #[test]
    fn empty_without_clicks_also_when_corrupt_objects_are_skipped() {
        for stream in STREAMS {
            assert_eq!(decide(&found(0, false, 0, stream)), Outcome::Empty);
            assert_eq!(decide(&found(1, true, 0, stream)), Outcome::Empty);
        }
    }

    #[test]
    fn unreconciled_when_prometheus_cannot_be_read() {
        assert_eq!(
            decide(&found(0, false, 10, Some(Stream::Unreadable))),
            Outcome::Unreconciled
        );
    }

    #[test]
    fn corrupt_skipped_whatever_the_stream_says() {
        for stream in STREAMS {
            assert_eq!(
                decide(&found(1, true, 10, stream)),
                Outcome::CorruptSkipped,
                "{stream:?}"
            );
        }
    }

    #[test]
    fn publishing_does_not_wait_for_the_stream() {
        for corrupt_objects in [0, 1] {
            for skip_corrupt in [false, true] {
                for clicks in [0, 1] {
                    let before = decide(&found(corrupt_objects, skip_corrupt, clicks, None));
                    for stream in STREAMS {
                        let after = decide(&found(corrupt_objects, skip_corrupt, clicks, stream));
                        assert_eq!(before.publishes(), after.publishes(), "{after:?}");
                    }
                }
            }
        }
    }
}
