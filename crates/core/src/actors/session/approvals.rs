//! Tool approvals: the CLI's `can_use_tool` requests (sessions in permission
//! mode `default`, launched with `--permission-prompt-tool stdio`). The
//! server's policy answers first (a path outside the workspace is denied);
//! anything else waits for a client's decision, stored and published, and is
//! denied when nobody answers within `APPROVAL_TIMEOUT_SECONDS`.

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::SessionActor;
use crate::cli::protocol;
use crate::db::models::approval::{self, Approval};
use crate::domain::approval::{ApprovalView, Resolved};
use crate::domain::event::{PermissionResolved, StreamEvent};

/// Tool input fields that name a file or folder the tool works on.
const PATH_FIELDS: [&str; 3] = ["file_path", "path", "notebook_path"];

/// A `can_use_tool` request the CLI waits on.
pub struct LiveApproval {
    /// The CLI's control request id, answered with the decision.
    pub request_id: String,
    pub tool: String,
    pub input: Value,
    pub expires: Instant,
}

/// A client's answer to an approval.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allow: bool,
    pub updated_input: Option<Value>,
    pub message: Option<String>,
    /// Add a session rule so the same tool is not asked again.
    pub remember_session: bool,
}

/// Why an approval could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Not pending in this session's live process (answered, expired, or
    /// asked by a process that is gone).
    NotPending,
    /// The decision's `updated_input` names this path outside the workspace.
    OutsideWorkspace(String),
}

impl SessionActor {
    /// Handles one `can_use_tool` request.
    pub(super) fn on_can_use_tool(&mut self, request_id: String, request: Value) {
        let tool = request
            .get("tool_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
        if let Some(path) = path_outside(&input, &self.session.workspace) {
            let message = format!(
                "Denied by server policy: {tool} may not touch {path}, which is outside the session's workspace."
            );
            tracing::info!(session = %self.session.name, %tool, %path, "tool call outside the workspace denied");
            self.answer_cli(&request_id, json!({"behavior": "deny", "message": message}));
            if let Some(running) = self.head.running_mut() {
                let resolved = PermissionResolved::DeniedByPolicy {
                    id: None,
                    tool: tool.clone(),
                    status: approval::DENIED.to_owned(),
                    by: "policy".to_owned(),
                    message,
                };
                running.emit(&mut self.hub, StreamEvent::PermissionResolved(resolved));
            }
            return;
        }
        let timeout = self.runtime.settings.approvals.timeout;
        let now = crate::db::now();
        let row = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            session_id: self.session.id.clone(),
            tenant_id: self.session.tenant_id.clone(),
            job_id: self
                .head
                .running()
                .and_then(|r| r.job_id().map(str::to_owned)),
            tool: tool.clone(),
            input: input.to_string(),
            suggestions: request
                .get("permission_suggestions")
                .cloned()
                .unwrap_or_else(|| json!([]))
                .to_string(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(timeout).unwrap_or_default(),
            status: approval::PENDING.into(),
            decision: None,
            decided_at: None,
        };
        let view = approval_view(&row, &self.session.name);
        let view_row = view.clone();
        let id = row.id.clone();
        self.approvals.insert(
            row.id.clone(),
            LiveApproval {
                request_id,
                tool: tool.clone(),
                input,
                expires: Instant::now() + timeout,
            },
        );
        crate::metrics::approvals_pending_changed(1);
        let webhooks = self.runtime.webhooks.clone();
        // Heard (event, sync reply) once the row is committed, so a
        // decision sent at once finds it.
        let gate = self.hub.gate();
        self.writer.write(
            move |c| {
                approval::insert(c, &row)?;
                notify_job_webhook(c, &row, &view_row)
            },
            Some(Box::new(move |queued| {
                if let (Ok(true), Some(webhooks)) = (queued, webhooks) {
                    webhooks.do_send(crate::actors::webhooks::Wake);
                }
                gate.open();
            })),
        );
        if let Some(running) = self.head.running_mut() {
            running.emit(
                &mut self.hub,
                StreamEvent::PermissionRequest(Box::new(view)),
            );
            running.notify_approval(&self.hub, Some(&id));
        }
    }

    /// Answers a pending approval with a client's decision.
    pub(super) fn resolve_approval(
        &mut self,
        id: &str,
        decision: Decision,
    ) -> Result<Resolved, ResolveError> {
        // An input changed by the client meets the same path policy as the
        // model's; the approval stays pending when it does not.
        if let (true, Some(input)) = (decision.allow, &decision.updated_input) {
            if let Some(path) = path_outside(input, &self.session.workspace) {
                return Err(ResolveError::OutsideWorkspace(path));
            }
        }
        let live = self.approvals.remove(id).ok_or(ResolveError::NotPending)?;
        let (status, payload) = if decision.allow {
            let tool = live.tool.clone();
            let mut payload = json!({
                "behavior": "allow",
                // The CLI requires the input on every allow.
                "updatedInput": decision.updated_input.clone().unwrap_or(live.input),
            });
            if decision.remember_session {
                payload["updatedPermissions"] = json!([{
                    "type": "addRules",
                    "rules": [{"toolName": tool}],
                    "behavior": "allow",
                    "destination": "session",
                }]);
            }
            (approval::ALLOWED, payload)
        } else {
            let message = decision
                .message
                .clone()
                .unwrap_or_else(|| "The user denied this tool call.".into());
            (
                approval::DENIED,
                json!({"behavior": "deny", "message": message}),
            )
        };
        self.answer_cli(&live.request_id, payload.clone());
        self.settle(id, status, Some(payload.clone()));
        if let Some(running) = self.head.running_mut() {
            running.last_output = Instant::now();
        }
        Ok(Resolved {
            id: id.to_owned(),
            status,
            decision: payload,
        })
    }

    /// Denies approvals nobody answered in time.
    pub(super) fn expire_approvals(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .approvals
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let seconds = self.runtime.settings.approvals.timeout.as_secs();
        for id in expired {
            if let Some(live) = self.approvals.remove(&id) {
                let message = format!(
                    "Denied: nobody approved this tool call within {seconds} seconds (APPROVAL_TIMEOUT_SECONDS)."
                );
                let payload = json!({"behavior": "deny", "message": message});
                self.answer_cli(&live.request_id, payload.clone());
                self.settle(&id, approval::EXPIRED, Some(payload));
                if let Some(running) = self.head.running_mut() {
                    running.last_output = Instant::now();
                }
            }
        }
    }

    /// The CLI withdrew one of its requests (`control_cancel_request`).
    pub(super) fn on_control_cancel(&mut self, request_id: &str) {
        let id = self
            .approvals
            .iter()
            .find(|(_, a)| a.request_id == request_id)
            .map(|(id, _)| id.clone());
        if let Some(id) = id {
            self.approvals.remove(&id);
            self.settle(&id, approval::CANCELLED, None);
        }
    }

    /// Every pending approval ends cancelled (the turn or process ended).
    pub(super) fn cancel_approvals(&mut self) {
        let ids: Vec<String> = self.approvals.drain().map(|(id, _)| id).collect();
        for id in ids {
            self.settle(&id, approval::CANCELLED, None);
        }
    }

    /// Stores an approval's final state and publishes `permission_resolved`.
    fn settle(&mut self, id: &str, status: &'static str, decision: Option<Value>) {
        crate::metrics::approvals_pending_changed(-1);
        let resolved = PermissionResolved::Settled {
            id: id.to_owned(),
            status: status.to_owned(),
            decision: decision.clone(),
        };
        let row_id = id.to_owned();
        let stored = decision.map(|d| d.to_string());
        let gate = self.hub.gate();
        self.writer.write(
            move |c| approval::settle(c, &row_id, status, stored.as_deref()),
            Some(Box::new(move |_| gate.open())),
        );
        if let Some(running) = self.head.running_mut() {
            running.emit(&mut self.hub, StreamEvent::PermissionResolved(resolved));
            running.notify_approval(&self.hub, None);
        }
    }

    fn answer_cli(&self, request_id: &str, response: Value) {
        if let Some(live) = self.process.live() {
            live.handle
                .send_line(protocol::control_success_line(request_id, response));
        }
    }
}

/// The view as an event or webhook payload.
fn approval_view(row: &Approval, session_name: &str) -> ApprovalView {
    row.view(session_name)
}

/// Queues the signed `approval.required` webhook when the asking turn is a
/// job with a webhook URL; `true` when one was queued.
fn notify_job_webhook(
    conn: &mut crate::db::DbConnection,
    row: &Approval,
    view: &ApprovalView,
) -> crate::db::DbResult<bool> {
    let Some(job_id) = &row.job_id else {
        return Ok(false);
    };
    let Some(job) = crate::db::models::job::find_by_id(conn, job_id)? else {
        return Ok(false);
    };
    let Some(url) = job.webhook_url else {
        return Ok(false);
    };
    let body = json!({
        "event": "approval.required",
        "type": "approval.required",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "approval": view,
    });
    crate::db::models::webhook::enqueue(
        conn,
        &row.tenant_id,
        job_id,
        &url,
        "approval.required",
        &body.to_string(),
    )?;
    Ok(true)
}

/// The first path argument of a tool call that leaves `workspace`, if any.
/// Relative paths are taken from the workspace. Paths are compared as the
/// file system resolves them, so a symlink inside the workspace that points
/// out of it counts as outside. (A few `stat`s: cheap enough for the actor.)
fn path_outside(input: &Value, workspace: &Path) -> Option<String> {
    let root = real_path(workspace);
    PATH_FIELDS
        .iter()
        .filter_map(|field| input.get(*field).and_then(Value::as_str))
        .find(|raw| {
            let path = Path::new(raw);
            let full = if path.is_absolute() {
                real_path(path)
            } else {
                real_path(&workspace.join(path))
            };
            !full.starts_with(&root)
        })
        .map(str::to_owned)
}

/// `path` with every symlink of its longest existing prefix resolved; the
/// part that does not exist yet (a file about to be written) cannot hold a
/// symlink, so it is appended as written, `..` resolved lexically.
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut missing = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut full = real;
            full.extend(missing.iter().rev());
            return normalize(&full);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return normalize(path),
        }
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_workspace_are_spotted() {
        let ws = Path::new("/srv/ws/alice/s");
        assert_eq!(
            path_outside(&json!({"file_path": "/srv/ws/alice/s/a.txt"}), ws),
            None
        );
        assert_eq!(
            path_outside(&json!({"file_path": "sub/../a.txt"}), ws),
            None
        );
        assert_eq!(
            path_outside(&json!({"command": "cat /etc/passwd"}), ws),
            None
        );
        assert_eq!(
            path_outside(&json!({"file_path": "/etc/passwd"}), ws).as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(
            path_outside(&json!({"path": "../bob"}), ws).as_deref(),
            Some("../bob")
        );
        assert_eq!(
            path_outside(
                &json!({"notebook_path": "/srv/ws/alice/s/../t/x.ipynb"}),
                ws
            )
            .as_deref(),
            Some("/srv/ws/alice/s/../t/x.ipynb")
        );
        assert!(path_outside(&json!({"file_path": "/srv/ws/alice/sibling/x"}), ws).is_some());
    }

    #[test]
    fn a_symlink_out_of_the_workspace_is_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(ws.join("inner")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, ws.join("escape")).unwrap();
        std::os::unix::fs::symlink(ws.join("inner"), ws.join("alias")).unwrap();
        let outside = |raw: &str| path_outside(&json!({ "file_path": raw }), &ws);
        assert_eq!(outside("escape/new.txt").as_deref(), Some("escape/new.txt"));
        assert!(outside(&format!("{}/escape/a/b.txt", ws.display())).is_some());
        // A link that stays inside, and paths not created yet, are fine.
        assert_eq!(outside("alias/x.txt"), None);
        assert_eq!(outside("new/dir/x.txt"), None);
        assert_eq!(outside("inner/../y.txt"), None);
        assert!(outside("new/../../z.txt").is_some());
    }
}
