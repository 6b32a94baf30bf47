//! The session's CLI process: started in a live-process slot the supervisor
//! grants, `initialize`d, retired gracefully when idle (so its transcript is
//! complete before anything resumes it), killed when it must stop now.

use std::time::{Duration, Instant};

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use tokio::sync::mpsc;

use super::upward::{ReleaseSlot, RequestSlot};
use super::watchdog::with_stderr;
use super::{messages, LiveProcess, PendingControl, Process, SessionActor};
use crate::cli::command::{Conversation, LaunchPlan};
use crate::cli::process::CliProcess;
use crate::cli::protocol;
use crate::domain::session::TurnOverrides;
use crate::domain::turn::TurnError;
use crate::spec::LaunchSpec;

/// How long an idle process may take to exit once its stdin is closed.
pub(super) const RETIRE_GRACE: Duration = Duration::from_secs(5);

impl SessionActor {
    /// Asks the supervisor for a live-process slot (granted with `SlotGranted`).
    pub(super) fn request_slot(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.process, Process::Cold) {
            self.process = Process::WaitingForSlot;
            self.supervisor.request_slot.do_send(RequestSlot {
                session_id: self.session.id.clone(),
                addr: ctx.address(),
            });
        }
    }

    /// A slot granted without a turn asking (`WarmSession`): starts the
    /// process with the session's own launch spec, so the first turn finds
    /// it running. The idle timeout retires it if no turn comes. A session
    /// that is closing gives the slot back.
    pub(super) fn warm_up(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.intake, super::Intake::Open) {
            self.release_slot();
            return;
        }
        self.process = Process::Slot;
        let spec = LaunchSpec::resolve(
            &self.runtime.settings,
            &self.session.spec,
            &TurnOverrides::default(),
        );
        tracing::debug!(session = %self.session.name, "starting the CLI ahead of the first turn");
        self.spawn_process(spec, ctx);
    }

    /// Starts the process once its agent user is known and its transcript
    /// is ready: resumed when there is one (on disk, or rebuilt from the
    /// database), else a new one. The actor waits meanwhile, so nothing
    /// else starts a process. A tenant at its disk quota gets no process:
    /// the turn that asked for it fails with the quota's error.
    pub(super) fn spawn_process(&mut self, spec: LaunchSpec, ctx: &mut Context<Self>) {
        self.process = Process::Preparing;
        let sandbox = self.runtime.sandbox.clone();
        let tenant = self.session.tenant_id.clone();
        let transcript = self.transcript_preparation();
        let prepared = async move {
            let owner = sandbox
                .owner(&tenant)
                .await
                .map_err(|e| format!("no agent user for the tenant: {e}"))?;
            Ok::<_, String>((transcript.run(owner).await, owner))
        };
        let disk = self.disk_status();
        // The launch is logged in the span of the turn that asked for it.
        let span = self.span();
        let preparing = Instant::now();
        ctx.wait(
            async move { (prepared.await, disk.await) }
                .into_actor(self)
                .map(move |(prepared, disk), act, ctx| {
                    let _entered = span.enter();
                    crate::metrics::process_start_step("prepare", preparing.elapsed());
                    if !matches!(act.process, Process::Preparing) {
                        return;
                    }
                    act.process = Process::Slot;
                    if let Some(error) = act.disk_refusal(&disk) {
                        act.release_slot();
                        if let Some(turn) = act.queue.pop_front() {
                            act.fail_unstarted(turn, error);
                        }
                        ctx.notify(messages::Advance);
                        return;
                    }
                    let file_size_max = disk.ok().map(|d| d.limit_bytes);
                    match prepared {
                        Ok((conversation, owner)) => {
                            act.launch(spec, conversation, owner, file_size_max, ctx)
                        }
                        Err(e) => act.launch_failed(e, ctx),
                    }
                }),
        );
    }

    /// A process that could not start: its slot goes back and the turn
    /// that was waiting for it fails with `reason`.
    fn launch_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::error!(session = %self.session.name, error = %reason, "cannot start the CLI");
        self.release_slot();
        if let Some(turn) = self.queue.pop_front() {
            self.fail_unstarted(turn, TurnError::Process(reason));
        }
        ctx.notify(messages::Advance);
    }

    fn launch(
        &mut self,
        spec: LaunchSpec,
        conversation: Conversation,
        owner: crate::sandbox::Owner,
        file_size_max: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let model_grant = self
            .runtime
            .gateway
            .grant(&self.session.tenant_id, Some(&self.session.id));
        let plan = LaunchPlan {
            cli_path: self.runtime.cli_path.clone(),
            workspace: self.session.workspace.clone(),
            config_dir,
            env: self.runtime.settings.sessions.cli_env.clone(),
            model_env: model_grant.env(),
            spec: spec.clone(),
            conversation,
            file_size_max,
        };
        self.next_generation();
        let confining = Instant::now();
        let started = self.confine(&plan, owner).and_then(|confinement| {
            crate::metrics::process_start_step("confine", confining.elapsed());
            let spawning = Instant::now();
            // One stream per process: it ends when the process's output
            // does, so a stopped process leaves nothing that keeps the
            // actor alive.
            let (output_tx, output_rx) = mpsc::unbounded_channel();
            let handle = CliProcess::spawn(
                &plan,
                confinement,
                &self.runtime.pid_dir(),
                self.generation,
                output_tx,
            )
            .map_err(|e| e.to_string())?;
            ctx.add_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(
                output_rx,
            ));
            crate::metrics::process_start_step("spawn", spawning.elapsed());
            Ok(handle)
        });
        match started {
            Ok(handle) => {
                tracing::info!(session = %self.session.name, pid = handle.pid, "started CLI process");
                crate::metrics::cli_spawned();
                self.runtime.note_spawn();
                let request_id = self.next_control_id();
                let line = protocol::control_request_line(&request_id, protocol::initialize(&spec));
                handle.send_line(line);
                self.pending_control
                    .insert(request_id, PendingControl::Initialize);
                // Started ahead of any turn on a new conversation: primed
                // once initialised (see `priming`).
                let priming = if self.runtime.settings.sessions.warm_prime
                    && self.queue.is_empty()
                    && matches!(plan.conversation, Conversation::New(_))
                {
                    super::priming::Priming::Wanted
                } else {
                    super::priming::Priming::Off
                };
                self.process = Process::Starting(LiveProcess {
                    handle,
                    model_grant,
                    spec,
                    started: Instant::now(),
                    reported_cost_micros: 0,
                    priming,
                });
            }
            Err(e) => self.launch_failed(e, ctx),
        }
    }

    /// The sandbox of the process `plan` describes: its workspace and CLI
    /// state opened without following links and handed to the tenant's
    /// agent user, its cgroup made.
    fn confine(
        &self,
        plan: &LaunchPlan,
        owner: crate::sandbox::Owner,
    ) -> Result<Option<crate::sandbox::Confinement>, String> {
        let sandbox = &self.runtime.sandbox;
        if !sandbox.is_on() {
            return Ok(None);
        }
        let workspace = self
            .runtime
            .workspace_tree(&self.session.tenant_id, &plan.workspace)
            .map_err(|e| format!("cannot open the working folder: {e}"))?;
        let config = self
            .runtime
            .cli_config_tree(&self.session.tenant_id)
            .map_err(|e| format!("cannot open the CLI state folder: {e}"))?;
        sandbox
            .hand_over(&workspace, owner)
            .and_then(|()| sandbox.hand_over(&config, owner))
            .map_err(|e| format!("cannot give the workspace to the agent user: {e}"))?;
        let tenant = crate::egress::Owner {
            tenant_id: self.session.tenant_id.clone(),
            session_id: self.session.id.clone(),
        };
        // The tenant's git mirrors, read-only: a worktree's objects live there.
        let mut read_only = plan.spec.add_dirs.clone();
        let mirrors = crate::git::mirror::tenant_dir(
            &self.runtime.settings.storage.data_dir,
            &self.session.tenant_id,
        );
        if mirrors.is_dir() {
            read_only.push(mirrors);
        }
        let mounts = crate::sandbox::Mounts {
            cli: &plan.cli_path,
            workspace: (&workspace, &plan.workspace),
            config_dir: (&config, &plan.config_dir),
            add_dirs: &read_only,
            owner,
            tenant: Some(&tenant),
            offline: false,
        };
        let group = format!("{}-{}", self.session.id, self.generation);
        sandbox.confine(&mounts, Some(&group))
    }

    pub(super) fn next_control_id(&mut self) -> String {
        self.control_counter += 1;
        format!("req_{}_{}", self.generation, self.control_counter)
    }

    /// `initialize` answered (or refused: the CLI works without it), or
    /// the priming exchange done: the process takes turns.
    pub(super) fn on_initialized(&mut self, ctx: &mut Context<Self>) {
        if self.begin_priming() {
            return;
        }
        if let Process::Starting(_) = self.process {
            if let Process::Starting(live) = std::mem::replace(&mut self.process, Process::Slot) {
                self.process = Process::Ready(live);
            }
        }
        self.advance(ctx);
    }

    /// Closes the idle process's stdin and pauses this actor until it has
    /// exited (so its transcript is complete before anything resumes it), or
    /// kills it after `RETIRE_GRACE`; then runs `then`. (One future: actix
    /// runs queued `wait` futures newest first.)
    pub(super) fn retire_process(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let retiring = self.take_for_retirement(RETIRE_GRACE);
        ctx.wait(
            async move {
                if let Some(retiring) = retiring {
                    retiring.await;
                }
            }
            .into_actor(self)
            .map(move |(), act, ctx| then(act, ctx)),
        );
    }

    /// Detaches the live process (its slot stays held); the future retires it.
    pub(super) fn take_for_retirement(
        &mut self,
        grace: Duration,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        self.priming_lost();
        let live = match std::mem::replace(&mut self.process, Process::Slot) {
            Process::Starting(live) | Process::Ready(live) => live,
            other => {
                self.process = other;
                return None;
            }
        };
        self.pending_control.clear();
        self.next_generation();
        Some(live.handle.retire(grace))
    }

    /// Kills the process group (its slot stays held); its late output is
    /// ignored by generation.
    pub(super) fn stop_process(&mut self) {
        self.priming_lost();
        match std::mem::replace(&mut self.process, Process::Slot) {
            Process::Starting(mut live) | Process::Ready(mut live) => live.handle.kill(),
            other => self.process = other,
        }
        self.pending_control.clear();
        self.next_generation();
    }

    /// Gives the slot back (killing the process, if one still runs).
    pub(super) fn release_slot(&mut self) {
        self.stop_process();
        if !matches!(self.process, Process::Cold) {
            self.process = Process::Cold;
            self.supervisor.release_slot.do_send(ReleaseSlot {
                session_id: self.session.id.clone(),
            });
        }
    }

    pub(super) fn stderr_tail(&self) -> String {
        self.process
            .live()
            .map(|p| p.handle.stderr_tail())
            .unwrap_or_default()
    }

    /// The process exited on its own (crash, or the end of a retirement
    /// already let go of, which is ignored by generation).
    pub(super) fn on_exit(
        &mut self,
        code: Option<i32>,
        signal: Option<i32>,
        ctx: &mut Context<Self>,
    ) {
        let stderr = self.stderr_tail();
        let was_ready = matches!(self.process, Process::Ready(_));
        self.priming_lost();
        // Already gone: nothing to kill, only the slot to give back.
        self.process = Process::Slot;
        self.pending_control.clear();
        self.next_generation();
        self.release_slot();
        let status = match (code, signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => "unknown status".into(),
        };
        tracing::warn!(session = %self.session.name, %status, stderr = %stderr, "CLI process exited");
        let message = with_stderr(&format!("the CLI exited unexpectedly ({status})"), &stderr);
        if self.head.running().is_some() {
            self.fail_current(TurnError::Process(message));
        } else if !was_ready {
            // It died while starting: the turn that needed it cannot run.
            if let Some(turn) = self.queue.pop_front() {
                self.fail_unstarted(turn, TurnError::Process(message));
            }
        }
        self.advance(ctx);
    }
}
