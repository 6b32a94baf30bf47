//! Schedules as clients see them: when a schedule is due (cron with an
//! optional seconds field, a fixed interval, or one instant), in which time
//! zone, and what happens to a run that is due while the last one is still
//! going or while no server was running.

use std::str::FromStr as _;

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

/// The shortest interval of `every`.
pub const MIN_EVERY_SECONDS: i64 = 1;
/// The longest interval of `every` (a year).
pub const MAX_EVERY_SECONDS: i64 = 366 * 24 * 3600;

/// When a schedule is due.
#[derive(Debug, Clone)]
pub enum Timing {
    /// A cron expression (5 fields, or 6 with seconds first) in `zone`.
    Cron {
        cron: Box<croner::Cron>,
        zone: chrono_tz::Tz,
    },
    /// Every so many seconds, counted from the first due time.
    Every { seconds: i64 },
    /// Once, at that instant.
    At(NaiveDateTime),
}

impl Timing {
    /// Reads the schedule's one timing field; the errors name the field.
    pub fn parse(
        cron: Option<&str>,
        every: Option<&str>,
        at: Option<&str>,
        timezone: &str,
    ) -> Result<Timing, String> {
        let zone = parse_zone(timezone)?;
        match (cron, every, at) {
            (Some(cron), None, None) => Ok(Timing::Cron {
                cron: Box::new(parse_cron(cron)?),
                zone,
            }),
            (None, Some(every), None) => Ok(Timing::Every {
                seconds: parse_every(every)?,
            }),
            (None, None, Some(at)) => {
                let at = DateTime::parse_from_rfc3339(at).map_err(|_| {
                    format!("at {at:?} is not an RFC 3339 instant (e.g. 2027-01-01T02:00:00Z)")
                })?;
                Ok(Timing::At(at.with_timezone(&Utc).naive_utc()))
            }
            _ => Err("a schedule needs exactly one of cron, every and at".into()),
        }
    }

    /// The first due time strictly after `after` (UTC), if any.
    pub fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Timing::Cron { cron, zone } => {
                let local = zone.from_utc_datetime(&after);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc).naive_utc())
            }
            Timing::Every { seconds } => Some(after + chrono::Duration::seconds(*seconds)),
            Timing::At(at) => (*at > after).then_some(*at),
        }
    }

    /// The first due time of a new (or resumed) schedule, from `now`: for
    /// `every`, one interval from now; a one-shot in the past is due at once.
    pub fn first(&self, now: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Timing::At(at) => Some(*at),
            _ => self.next_after(now),
        }
    }

    /// Due times from `from` (itself due) up to `now`, at most `limit` of
    /// them, and the first due time after `now`.
    pub fn due_until(
        &self,
        from: NaiveDateTime,
        now: NaiveDateTime,
        limit: usize,
    ) -> (Vec<NaiveDateTime>, usize, Option<NaiveDateTime>) {
        let mut due = Vec::new();
        let mut next = Some(from);
        while let Some(t) = next.filter(|t| *t <= now) {
            if due.len() == limit {
                // Past the limit the rest are counted, not listed.
                let next = match self {
                    // Intervals stay on their grid.
                    Timing::Every { seconds } => {
                        let behind = (now - t).num_seconds() / seconds;
                        Some(t + chrono::Duration::seconds(seconds * (behind + 1)))
                    }
                    _ => self.next_after(now),
                };
                return (due, self.count_until(t, now), next);
            }
            due.push(t);
            next = self.next_after(t);
        }
        (due, 0, next)
    }

    /// How many due times from `t` (itself due) up to `now`; a cron walk
    /// stops counting at 100 000.
    fn count_until(&self, t: NaiveDateTime, now: NaiveDateTime) -> usize {
        match self {
            Timing::Every { seconds } => {
                usize::try_from((now - t).num_seconds() / seconds + 1).unwrap_or(1)
            }
            Timing::At(_) => 1,
            Timing::Cron { .. } => {
                let mut n = 0;
                let mut next = Some(t);
                while next.is_some_and(|t| t <= now) && n < 100_000 {
                    n += 1;
                    next = next.and_then(|t| self.next_after(t));
                }
                n
            }
        }
    }
}

fn parse_zone(timezone: &str) -> Result<chrono_tz::Tz, String> {
    chrono_tz::Tz::from_str(timezone)
        .map_err(|_| format!("timezone {timezone:?} is not an IANA time zone (e.g. Europe/Berlin)"))
}

fn parse_cron(cron: &str) -> Result<croner::Cron, String> {
    if cron.len() > 256 {
        return Err("cron is longer than 256 characters".into());
    }
    let fields = cron.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "cron {cron:?} needs 5 fields (minute hour day month weekday), or 6 with seconds first"
        ));
    }
    croner::Cron::from_str(cron).map_err(|e| format!("cron {cron:?} is not valid: {e}"))
}

/// `90s`, `15m`, `1h30m`, `2d`: whole seconds, minutes, hours and days.
pub fn parse_every(every: &str) -> Result<i64, String> {
    let bad = || format!("every {every:?} is not a duration like 90s, 15m, 1h30m or 2d");
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in every.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 && every.trim().is_empty() {
        return Err(bad());
    }
    if !(MIN_EVERY_SECONDS..=MAX_EVERY_SECONDS).contains(&total) {
        return Err(format!(
            "every must be from {MIN_EVERY_SECONDS}s to {}d",
            MAX_EVERY_SECONDS / 86_400
        ));
    }
    Ok(total)
}

/// What a run due while the schedule's last run is unfinished does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// It does not run (recorded as `skipped`).
    #[default]
    Skip,
    /// It waits, then runs when the last run ends.
    Queue,
    /// The last run's job is cancelled, then it runs.
    Replace,
    /// It runs beside the last one.
    Allow,
}

/// What happens to due times missed while no server ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// None of them run (one `skipped` run says how many were missed).
    None,
    /// The latest of them runs once.
    #[default]
    One,
    /// Each of them runs (up to a limit).
    All,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn from_stored(s: &str) -> Self {
                match s { $($s => Self::$v,)* _ => Self::default() }
            }
        }
    };
}
names!(Overlap { Skip => "skip", Queue => "queue", Replace => "replace", Allow => "allow" });
names!(CatchUp { None => "none", One => "one", All => "all" });

/// A run's origin.
pub const ORIGIN_SCHEDULE: &str = "schedule";
pub const ORIGIN_CATCH_UP: &str = "catch_up";
pub const ORIGIN_MANUAL: &str = "manual";

/// A run's own states; once its job exists, clients see the job's status.
pub const RUN_CLAIMED: &str = "claimed";
pub const RUN_WAITING: &str = "waiting";
pub const RUN_STARTED: &str = "started";
pub const RUN_SKIPPED: &str = "skipped";
pub const RUN_ERROR: &str = "error";

/// A schedule as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleData {
    pub id: String,
    pub name: String,
    pub cron: Option<String>,
    /// The interval of `every`, in seconds.
    pub every_seconds: Option<i64>,
    /// The instant of a one-shot schedule.
    pub at: Option<String>,
    pub timezone: String,
    #[schema(value_type = crate::services::launch::JobPlan)]
    pub job: serde_json::Value,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub start_deadline_seconds: Option<i64>,
    pub paused: bool,
    pub pause_note: Option<String>,
    /// `null` while paused, and once a one-shot has run.
    pub next_run_at: Option<String>,
    pub last_run: Option<RunData>,
    pub counts: RunCounts,
    pub created_at: String,
    pub updated_at: String,
}

/// How a schedule's runs went, by outcome.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// Runs whose job was queued.
    pub started: i64,
    pub skipped: i64,
    /// Runs that could not start (e.g. the budget was used up).
    pub errors: i64,
}

/// One run of a schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunData {
    pub id: String,
    /// `schedule`, `catch_up` (due while no server ran) or `manual` (trigger).
    pub origin: String,
    pub due_at: String,
    /// `skipped`, `waiting` or `error` before a job exists; then the job's
    /// status (`queued`, `running`, `done`, `failed`, `cancelled`,
    /// `interrupted`).
    pub status: String,
    /// Why it was skipped or could not start.
    pub reason: Option<String>,
    /// The job (null when none was started).
    pub job_id: Option<String>,
    /// The session its job runs in.
    pub session: Option<String>,
    pub started_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> NaiveDateTime {
        DateTime::parse_from_rfc3339(s).unwrap().naive_utc()
    }

    #[test]
    fn every_reads_whole_units() {
        assert_eq!(parse_every("90s"), Ok(90));
        assert_eq!(parse_every("1h30m"), Ok(5400));
        assert_eq!(parse_every("2d"), Ok(172_800));
        for bad in [
            "",
            "10",
            "1x",
            "s",
            "0s",
            "-1s",
            "400d",
            "99999999999999999999s",
        ] {
            assert!(parse_every(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cron_takes_an_optional_seconds_field() {
        let t = Timing::parse(Some("*/10 * * * * *"), None, None, "UTC").unwrap();
        assert_eq!(
            t.next_after(utc("2027-01-01T00:00:01Z")),
            Some(utc("2027-01-01T00:00:10Z"))
        );
        let t = Timing::parse(Some("0 2 * * *"), None, None, "Europe/Berlin").unwrap();
        // 02:00 in Berlin in winter is 01:00 UTC.
        assert_eq!(
            t.next_after(utc("2027-01-05T12:00:00Z")),
            Some(utc("2027-01-06T01:00:00Z"))
        );
        assert!(Timing::parse(Some("* * *"), None, None, "UTC").is_err());
        assert!(Timing::parse(Some("0 2 * * *"), None, None, "Mars/Base").is_err());
        assert!(Timing::parse(Some("0 2 * * *"), Some("1h"), None, "UTC").is_err());
        assert!(Timing::parse(None, None, None, "UTC").is_err());
    }

    #[test]
    fn a_time_the_clocks_skip_runs_once_just_after_the_change() {
        // Berlin springs forward on 2027-03-28 from 02:00 to 03:00: 02:30
        // does not exist that day. It runs once, at 03:00 local (01:00 UTC).
        let t = Timing::parse(Some("30 2 * * *"), None, None, "Europe/Berlin").unwrap();
        let first = t.next_after(utc("2027-03-27T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2027-03-28T01:00:00Z"));
        let second = t.next_after(first).unwrap();
        assert_eq!(second, utc("2027-03-29T00:30:00Z"));
        // It falls back on 2027-10-31: 02:30 happens twice, the run once.
        let first = t.next_after(utc("2027-10-30T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2027-10-31T00:30:00Z"));
        assert_eq!(t.next_after(first).unwrap(), utc("2027-11-01T01:30:00Z"));
    }

    #[test]
    fn due_times_are_listed_up_to_now_and_counted_past_the_limit() {
        let t = Timing::Every { seconds: 10 };
        let from = utc("2027-01-01T00:00:00Z");
        let (due, missed, next) = t.due_until(from, utc("2027-01-01T00:00:25Z"), 10);
        assert_eq!(due.len(), 3);
        assert_eq!(missed, 0);
        assert_eq!(next, Some(utc("2027-01-01T00:00:30Z")));
        let (due, missed, next) = t.due_until(from, utc("2027-01-01T01:00:05Z"), 2);
        assert_eq!(due.len(), 2);
        assert_eq!(due.len() + missed, 361);
        assert_eq!(next, Some(utc("2027-01-01T01:00:10Z")));
        let once = Timing::At(from);
        assert_eq!(
            once.due_until(from, utc("2027-01-02T00:00:00Z"), 5),
            (vec![from], 0, None)
        );
    }
}
