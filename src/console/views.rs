//! What the console's pages show, read from storage with the tenant in
//! every query, and shaped for the templates (which escape all of it).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use claude_code_api_core::db::models::approval::Approval;
use claude_code_api_core::db::models::job::Job;
use claude_code_api_core::db::models::message::Message;
use claude_code_api_core::db::models::webhook::DeliveryWithAttempts;

/// Sessions listed on one page (the API pages further).
pub const MAX_SESSIONS: i64 = 200;
/// Jobs and deliveries listed on the jobs page, newest first.
pub const MAX_JOBS: i64 = 100;
/// Schedules listed on the schedules page, by name.
pub const MAX_SCHEDULES: i64 = 200;
/// History messages shown on a session page, the newest.
pub const MAX_MESSAGES: i64 = 200;
/// Lines of one diff preview; the rest is counted, not shown.
const MAX_DIFF_LINES: usize = 300;
/// Characters of a tool input or result shown before it is cut.
const MAX_TEXT: usize = 20_000;

/// `$1.234567` from micro-USD (exact: no float on the way).
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (whole, frac) = (m / 1_000_000, m % 1_000_000);
    if frac == 0 {
        return format!("{sign}${whole}.00");
    }
    let frac = format!("{frac:06}");
    let frac = frac.trim_end_matches('0');
    let frac = if frac.len() < 2 {
        format!("{frac:0<2}")
    } else {
        frac.to_owned()
    };
    format!("{sign}${whole}.{frac}")
}

/// `2026-12-02 17:14` (UTC).
pub fn when(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

/// `text` cut to `MAX_TEXT` characters, saying so.
fn bounded(text: String) -> String {
    if text.chars().count() <= MAX_TEXT {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_TEXT).collect();
    cut.push_str("\n… (cut; download the file or read the API for all of it)");
    cut
}

/// One line of a diff preview.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiffLine {
    /// `add`, `del` or `more` (a count of lines not shown).
    pub kind: &'static str,
    pub text: String,
}

/// What a file-changing tool call would do, as removed and added lines.
#[derive(Debug, Clone, Serialize)]
pub struct ToolView {
    pub name: String,
    /// The tool's input, pretty JSON.
    pub input: String,
    /// The file it writes, for file-changing tools.
    pub file: Option<String>,
    pub diff: Vec<DiffLine>,
}

/// The removed and added lines of an Edit / MultiEdit / Write /
/// NotebookEdit input; empty for other tools.
pub fn diff_preview(tool: &str, input: &Value) -> Vec<DiffLine> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut pairs: Vec<(Option<String>, Option<String>)> = Vec::new();
    match tool {
        "Edit" => pairs.push((s(input, "old_string"), s(input, "new_string"))),
        "MultiEdit" => {
            for edit in input
                .get("edits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                pairs.push((s(edit, "old_string"), s(edit, "new_string")));
            }
        }
        "Write" => pairs.push((None, s(input, "content"))),
        "NotebookEdit" => pairs.push((None, s(input, "new_source"))),
        _ => {}
    }
    let mut lines = Vec::new();
    let mut hidden = 0usize;
    for (old, new) in pairs {
        let removed = old.iter().flat_map(|t| t.lines()).map(|l| ("del", l));
        let added = new.iter().flat_map(|t| t.lines()).map(|l| ("add", l));
        for (kind, text) in removed.chain(added) {
            if lines.len() < MAX_DIFF_LINES {
                lines.push(DiffLine {
                    kind,
                    text: text.to_owned(),
                });
            } else {
                hidden += 1;
            }
        }
    }
    if hidden > 0 {
        lines.push(DiffLine {
            kind: "more",
            text: format!("… {hidden} more lines"),
        });
    }
    lines
}

impl ToolView {
    /// Shows the file relative to the workspace when it is inside it.
    pub fn relative_to(mut self, workspace: &str) -> ToolView {
        let prefix = format!("{}/", workspace.trim_end_matches('/'));
        if let Some(inside) = self.file.as_deref().and_then(|f| f.strip_prefix(&prefix)) {
            self.file = Some(inside.to_owned());
        }
        self
    }
}

pub fn tool_view(name: &str, input: &Value) -> ToolView {
    let file = ["file_path", "notebook_path", "path"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    ToolView {
        name: name.to_owned(),
        input: bounded(serde_json::to_string_pretty(input).unwrap_or_default()),
        file,
        diff: diff_preview(name, input),
    }
}

/// Tools that change files, for "what the last turn changed".
fn changes_files(tool: &str) -> bool {
    matches!(tool, "Edit" | "MultiEdit" | "Write" | "NotebookEdit")
}

/// Where a session stands, as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Idle,
    Running,
    WaitingForApproval,
    /// Idle, and its last turn ended in an error.
    Error,
}

impl Status {
    pub fn of(running: bool, waiting: bool, last_failed: bool) -> Status {
        match (running, waiting, last_failed) {
            (true, true, _) => Status::WaitingForApproval,
            (true, false, _) => Status::Running,
            (false, _, true) => Status::Error,
            (false, _, false) => Status::Idle,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::WaitingForApproval => "waiting for approval",
            Status::Error => "error",
        }
    }
}

/// A pending approval as a card.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalCard {
    pub id: String,
    pub tool: ToolView,
    pub expires_at: String,
}

impl ApprovalCard {
    pub fn relative_to(mut self, workspace: &str) -> ApprovalCard {
        self.tool = self.tool.relative_to(workspace);
        self
    }
}

impl From<&Approval> for ApprovalCard {
    fn from(a: &Approval) -> Self {
        let input: Value = serde_json::from_str(&a.input).unwrap_or(Value::Null);
        ApprovalCard {
            id: a.id.clone(),
            tool: tool_view(&a.tool, &input),
            expires_at: when(&a.expires_at),
        }
    }
}

/// A row of the sessions page.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    pub name: String,
    pub status: Status,
    pub status_label: &'static str,
    pub turns: i64,
    pub cost: String,
    pub last_activity: String,
    pub approvals: Vec<ApprovalCard>,
    /// Seen only by its maker and the tenant's admins.
    pub private: bool,
}

/// One history message on a session page.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub role: String,
    pub content: String,
    pub is_error: bool,
    pub interrupted: bool,
    pub at: String,
    pub cost: Option<String>,
    pub tools: Vec<ToolView>,
}

fn tools_of(m: &Message) -> Vec<ToolView> {
    let tools: Vec<Value> = serde_json::from_str(&m.tools_used).unwrap_or_default();
    tools
        .iter()
        .map(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("tool");
            tool_view(name, t.get("input").unwrap_or(&Value::Null))
        })
        .collect()
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            role: m.role.clone(),
            content: bounded(m.content.clone()),
            is_error: m.is_error,
            interrupted: m.interrupted,
            at: when(&m.created_at),
            cost: (m.role == "assistant").then(|| usd(m.cost_micros)),
            tools: tools_of(m),
        }
    }
}

impl MessageView {
    pub fn relative_to(mut self, workspace: &str) -> MessageView {
        self.tools = self
            .tools
            .into_iter()
            .map(|t| t.relative_to(workspace))
            .collect();
        self
    }
}

/// The files the last answer's tools wrote, with their diffs.
pub fn last_changes(messages: &[Message]) -> Vec<ToolView> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant")
        .map(|m| {
            tools_of(m)
                .into_iter()
                .filter(|t| changes_files(&t.name))
                .collect()
        })
        .unwrap_or_default()
}

/// A job on the jobs page, with its session's name and its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub id: String,
    pub session: String,
    pub status: String,
    pub message: String,
    /// The answer's text, from the stored result.
    pub answer: Option<String>,
    /// The stored result document (JSON), whole.
    pub result: Option<String>,
    pub error: Option<String>,
    pub cost: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub cancellable: bool,
    pub webhook_url: Option<String>,
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: Vec<AttemptRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: String,
}

/// The jobs page's rows: the tenant's newest jobs with their sessions'
/// names, and their deliveries.
pub fn job_rows(jobs: Vec<(Job, String)>, deliveries: Vec<DeliveryWithAttempts>) -> Vec<JobRow> {
    let mut by_job: HashMap<String, Vec<DeliveryRow>> = HashMap::new();
    for (d, attempts) in deliveries {
        by_job
            .entry(d.job_id.clone())
            .or_default()
            .push(DeliveryRow {
                id: d.id,
                event_type: d.event_type,
                status: d.status,
                attempts: attempts
                    .into_iter()
                    .map(|a| AttemptRow {
                        attempt: a.attempt,
                        status_code: a.status_code,
                        error: a.error,
                        duration_ms: a.duration_ms,
                        at: when(&a.created_at),
                    })
                    .collect(),
            });
    }
    jobs.into_iter()
        .map(|(job, session)| JobRow {
            cancellable: !claude_code_api_core::domain::job::is_final(&job.status),
            deliveries: by_job.remove(&job.id).unwrap_or_default(),
            id: job.id,
            session,
            status: job.status,
            message: bounded(job.message),
            answer: job
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .and_then(|v| v.get("content").and_then(Value::as_str).map(str::to_owned))
                .map(bounded),
            result: job.result.map(bounded),
            error: job.error,
            cost: usd(job.cost_micros),
            created_at: when(&job.created_at),
            completed_at: job.completed_at.as_ref().map(when),
            webhook_url: job.webhook_url,
        })
        .collect()
}

/// One bar of the per-day spend chart, in SVG user units.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub date: String,
    pub cost: String,
    pub turns: i64,
}

/// Chart area of the per-day spend chart.
pub const CHART_WIDTH: i64 = 600;
pub const CHART_HEIGHT: i64 = 160;

/// The 30 days up to `today`, oldest first, a day without turns at zero,
/// so the chart's time axis is even.
pub fn last_days(
    days: &[claude_code_api_core::db::models::usage::Day],
    today: chrono::NaiveDate,
) -> Vec<claude_code_api_core::db::models::usage::Day> {
    let n = claude_code_api_core::db::models::usage::DAYS;
    (0..n)
        .rev()
        .map(|back| {
            let date = (today - chrono::Duration::days(back))
                .format("%Y-%m-%d")
                .to_string();
            days.iter().find(|d| d.date == date).cloned().unwrap_or(
                claude_code_api_core::db::models::usage::Day {
                    date,
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// Bars of the per-day spend, the tallest as high as the chart.
pub fn bars(days: &[claude_code_api_core::db::models::usage::Day]) -> Vec<Bar> {
    let n = i64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = CHART_WIDTH / n.max(1);
    let max = days.iter().map(|d| d.cost_micros).max().unwrap_or(0).max(1);
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            // At least 1 unit high, so a day with turns shows.
            let height = ((d.cost_micros as f64 / max as f64) * CHART_HEIGHT as f64).round() as i64;
            let height = height.max(i64::from(d.turns > 0));
            Bar {
                x: i64::try_from(i).unwrap_or(0) * slot + 1,
                y: CHART_HEIGHT - height,
                width: (slot - 2).max(1),
                height,
                date: d.date.clone(),
                cost: usd(d.cost_micros),
                turns: d.turns,
            }
        })
        .collect()
}

/// Share of a budget spent, in percent (capped at 100 for the gauge).
pub fn percent(spent: i64, budget: Option<i64>) -> Option<i64> {
    let budget = budget.filter(|b| *b > 0)?;
    Some(
        ((spent.max(0) as f64 / budget as f64) * 100.0)
            .round()
            .min(100.0) as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_shown_exactly() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_500_000), "$1.50");
        assert_eq!(usd(1_234_567), "$1.234567");
        assert_eq!(usd(10), "$0.00001");
        assert_eq!(usd(-2_000_000), "-$2.00");
    }

    #[test]
    fn edits_and_writes_preview_as_removed_and_added_lines() {
        let d = diff_preview(
            "Edit",
            &json!({"file_path": "a.txt", "old_string": "one\ntwo", "new_string": "three"}),
        );
        let kinds: Vec<_> = d.iter().map(|l| (l.kind, l.text.as_str())).collect();
        assert_eq!(kinds, [("del", "one"), ("del", "two"), ("add", "three")]);
        let d = diff_preview("Write", &json!({"file_path": "b", "content": "x\ny"}));
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|l| l.kind == "add"));
        assert!(diff_preview("Bash", &json!({"command": "ls"})).is_empty());
        let inside = tool_view("Write", &json!({"file_path": "/w/s/a/b.txt"})).relative_to("/w/s");
        assert_eq!(inside.file.as_deref(), Some("a/b.txt"));
        let outside = tool_view("Write", &json!({"file_path": "/w/other"})).relative_to("/w/s");
        assert_eq!(outside.file.as_deref(), Some("/w/other"));
        let long = "l\n".repeat(MAX_DIFF_LINES + 5);
        let d = diff_preview("Write", &json!({"content": long}));
        assert_eq!(d.len(), MAX_DIFF_LINES + 1);
        assert_eq!(d.last().unwrap().text, "… 5 more lines");
    }

    #[test]
    fn status_prefers_waiting_then_running_then_error() {
        assert_eq!(Status::of(true, true, true), Status::WaitingForApproval);
        assert_eq!(Status::of(true, false, true), Status::Running);
        assert_eq!(Status::of(false, true, true), Status::Error);
        assert_eq!(Status::of(false, false, false), Status::Idle);
    }

    #[test]
    fn bars_scale_to_the_busiest_day() {
        let days = vec![
            claude_code_api_core::db::models::usage::Day {
                date: "2026-12-01".into(),
                turns: 1,
                cost_micros: 500,
                ..Default::default()
            },
            claude_code_api_core::db::models::usage::Day {
                date: "2026-12-02".into(),
                turns: 2,
                cost_micros: 1000,
                ..Default::default()
            },
        ];
        let b = bars(&days);
        assert_eq!(b[1].height, CHART_HEIGHT);
        assert_eq!(b[0].height, CHART_HEIGHT / 2);
        assert_eq!(b[0].y, CHART_HEIGHT / 2);
        assert_eq!(percent(50, Some(200)), Some(25));
        assert_eq!(percent(500, Some(200)), Some(100));
        assert_eq!(percent(5, None), None);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let dense = last_days(&days, today);
        assert_eq!(dense.len(), 30);
        assert_eq!(dense[29].date, "2026-12-02");
        assert_eq!(dense[29].cost_micros, 1000);
        assert_eq!(dense[28].cost_micros, 500);
        assert_eq!(dense[0].date, "2026-11-03");
        assert_eq!(dense[0].turns, 0);
    }
}

/// A schedule on the schedules page.
#[derive(Debug, Serialize)]
pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    /// Its timing as written: the cron line, `every 90s`, or `at …`.
    pub timing: String,
    pub timezone: String,
    pub paused: bool,
    pub pause_note: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub next_run_at: Option<String>,
    pub last_run: Option<claude_code_api_core::domain::schedule::RunData>,
    pub counts: claude_code_api_core::domain::schedule::RunCounts,
}

pub fn schedule_row(s: &claude_code_api_core::domain::schedule::ScheduleData) -> ScheduleRow {
    let timing = match (&s.cron, s.every_seconds, &s.at) {
        (Some(cron), _, _) => cron.clone(),
        (None, Some(seconds), _) => format!("every {seconds}s"),
        (None, None, Some(at)) => format!("at {}", short_time(at)),
        _ => String::new(),
    };
    ScheduleRow {
        id: s.id.clone(),
        name: s.name.clone(),
        timing,
        timezone: s.timezone.clone(),
        paused: s.paused,
        pause_note: s.pause_note.clone(),
        next_run_at: s.next_run_at.as_deref().map(short_time),
        last_run: s.last_run.clone(),
        counts: s.counts.clone(),
    }
}

/// An RFC 3339 UTC time as `YYYY-MM-DD HH:MM:SS`.
fn short_time(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").chars().take(19).collect()
}

/// Pipelines shown on the pipelines page, the newest.
pub const MAX_PIPELINES: i64 = 50;

/// A pipeline on the pipelines page, its steps laid out in layers: a step
/// stands one layer right of the last of the steps it depends on.
#[derive(Debug, Serialize)]
pub struct PipelineRow {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub cost: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub layers: Vec<Vec<StepCard>>,
}

/// A step in a pipeline's graph.
#[derive(Debug, Serialize)]
pub struct StepCard {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    /// The steps it depends on, comma-separated.
    pub after: String,
    pub for_each: Option<String>,
    pub jobs: Vec<StepJobCard>,
    pub cost: String,
}

#[derive(Debug, Serialize)]
pub struct StepJobCard {
    pub status: String,
    pub session: String,
}

pub fn pipeline_row(
    p: &claude_code_api_core::services::pipelines::document::PipelineData,
) -> PipelineRow {
    let depth = step_depths(&p.steps);
    let layers_count = depth.values().copied().max().map_or(0, |d| d + 1);
    let mut layers: Vec<Vec<StepCard>> = (0..layers_count).map(|_| Vec::new()).collect();
    for step in &p.steps {
        let card = StepCard {
            id: step.id.clone(),
            state: step.state.clone(),
            reason: step.reason.clone(),
            after: step.depends_on.join(", "),
            for_each: step.for_each.clone(),
            jobs: step
                .jobs
                .iter()
                .map(|j| StepJobCard {
                    status: j.status.clone(),
                    session: j.session.clone(),
                })
                .collect(),
            cost: usd(step.cost_micros),
        };
        if let Some(layer) = depth.get(step.id.as_str()).and_then(|d| layers.get_mut(*d)) {
            layer.push(card);
        }
    }
    PipelineRow {
        id: p.id.clone(),
        name: p.name.clone(),
        status: p.status.clone(),
        cost: usd(p.cost_micros),
        created_at: short_time(&p.created_at),
        completed_at: p.completed_at.as_deref().map(short_time),
        layers,
    }
}

/// Each step's layer: 0 without dependencies, else one more than the
/// deepest step it depends on (the graph was checked acyclic when made).
fn step_depths(
    steps: &[claude_code_api_core::services::pipelines::document::StepData],
) -> HashMap<&str, usize> {
    let mut depth: HashMap<&str, usize> = HashMap::new();
    // At most one pass per step settles every depth of an acyclic graph.
    for _ in 0..steps.len() {
        for step in steps {
            let d = step
                .depends_on
                .iter()
                .map(|dep| depth.get(dep.as_str()).map_or(0, |d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(step.id.as_str(), d);
        }
    }
    depth
}
