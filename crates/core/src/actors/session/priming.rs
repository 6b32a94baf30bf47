//! Priming: a new CLI process does much of its work for a conversation
//! (building its prompt, loading what the first query needs) only when the
//! first message arrives, which makes a session's first turn several times
//! slower than the next. A process started ahead of any turn (warm-up) is
//! primed once `initialize` is answered: it gets a throwaway message, which
//! the model gateway answers itself (an empty reply of no tokens: nothing
//! goes upstream, nothing is charged), then `/clear`, which starts a fresh
//! conversation under a new CLI session id, then the control request
//! `get_context_usage`, which builds that conversation's context (its
//! prompt, the memory files). The first client turn then
//! finds a process as warm as after any turn, and a new conversation: the
//! one trace is the CLI's own note, sent with the first message, that
//! `/clear` was run (a few dozen tokens, which the CLI tells the model to
//! ignore). The throwaway conversation's transcript frames are not stored,
//! and its transcript file is removed.
//! `WARM_PRIME=false` leaves processes unprimed.

use actix::Context;

use super::{PendingControl, Process, SessionActor};
use crate::cli::protocol;
use crate::domain::money::usd_to_micros;

/// What a priming exchange sends first (never seen by the model).
pub const PRIMING_PROMPT: &str = "(warm-up)";
/// Then: a fresh conversation, the primed process kept.
const CLEAR: &str = "/clear";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Priming {
    /// Not wanted (a resumed conversation, or a turn already waiting), or done.
    Off,
    /// Started ahead of any turn on a new conversation: primed once
    /// initialised.
    Wanted,
    /// The throwaway message is with the CLI (since then).
    Prompt(std::time::Instant),
    /// `/clear` is with the CLI (priming began then).
    Clear(std::time::Instant),
    /// `get_context_usage` is with the CLI: answering it builds the new
    /// conversation's context (what the first message would otherwise wait
    /// for: about 5 ms of a 20 ms turn, measured on the raw CLI).
    Context(std::time::Instant),
}

impl SessionActor {
    /// Begins priming the starting process when it was launched for it and
    /// no turn has come meanwhile; `false` when there is nothing to prime.
    pub(super) fn begin_priming(&mut self) -> bool {
        let waiting = !self.queue.is_empty() || self.head.running().is_some();
        let cli_session_id = self.session.cli_session_id.clone();
        let Process::Starting(live) = &mut self.process else {
            return false;
        };
        if live.priming != Priming::Wanted || waiting {
            live.priming = Priming::Off;
            return false;
        }
        live.model_grant.set_priming(true);
        if !live.handle.send_line(protocol::user_line(PRIMING_PROMPT)) {
            live.model_grant.set_priming(false);
            live.priming = Priming::Off;
            return false;
        }
        live.priming = Priming::Prompt(std::time::Instant::now());
        self.primed_away = Some(cli_session_id);
        tracing::debug!(session = %self.session.name, "priming the new CLI process");
        true
    }

    /// A `result` while priming moves the exchange on; `false` when the
    /// process is not priming (the result is a turn's).
    pub(super) fn priming_result(&mut self, total_cost_usd: f64, ctx: &mut Context<Self>) -> bool {
        let Process::Starting(live) = &mut self.process else {
            return false;
        };
        // What the CLI counted so far is no turn's.
        live.reported_cost_micros = usd_to_micros(total_cost_usd);
        match live.priming {
            Priming::Prompt(began) => {
                if live.handle.send_line(protocol::user_line(CLEAR)) {
                    live.priming = Priming::Clear(began);
                } else {
                    live.model_grant.set_priming(false);
                    live.priming = Priming::Off;
                }
                true
            }
            Priming::Clear(began) => {
                self.remove_throwaway_transcript();
                let request_id = self.next_control_id();
                let Process::Starting(live) = &mut self.process else {
                    return true;
                };
                let asked = live.handle.send_line(protocol::control_request_line(
                    &request_id,
                    serde_json::json!({"subtype": "get_context_usage"}),
                ));
                if asked {
                    live.priming = Priming::Context(began);
                    self.pending_control
                        .insert(request_id, PendingControl::PrimeContext);
                } else {
                    self.primed(ctx);
                }
                true
            }
            Priming::Off | Priming::Wanted | Priming::Context(_) => false,
        }
    }

    /// The priming exchange is over (the context request answered, or
    /// refused by a CLI that lacks it): the process takes turns.
    pub(super) fn primed(&mut self, ctx: &mut Context<Self>) {
        let Process::Starting(live) = &mut self.process else {
            return;
        };
        if let Priming::Clear(began) | Priming::Context(began) = live.priming {
            crate::metrics::process_start_step("prime", began.elapsed());
        }
        // Calls from here on are the client's, upstream and charged.
        live.model_grant.set_priming(false);
        live.priming = Priming::Off;
        tracing::debug!(session = %self.session.name, "the CLI process is primed");
        self.on_initialized(ctx);
    }

    /// The throwaway conversation's transcript file goes: nothing of it is
    /// left for the agent to find (or for a resume to take up). Removed
    /// beneath the tenant's CLI state folder by descriptor.
    fn remove_throwaway_transcript(&self) {
        let Some(away) = self.primed_away.clone() else {
            return;
        };
        let (folder, file) =
            crate::cli::command::transcript_location(&self.session.workspace, &away);
        let config_dir = self.runtime.cli_config_dir(&self.session.tenant_id);
        let name = self.session.name.clone();
        crate::blocking::spawn(move || {
            let removed = crate::sandbox::Tree::open(&config_dir)
                .and_then(|state| state.subtree(&folder, None))
                .and_then(|folder| folder.remove_all(std::ffi::OsStr::new(&file)));
            if let Err(e) = removed {
                tracing::debug!(session = %name, error = %e, "the warm-up's transcript file stays");
            }
        });
    }

    /// The process is let go of (it died, is retired or killed) while
    /// priming: the throwaway conversation must never be resumed, so the
    /// session moves to a new conversation id at once (stored, so a
    /// restarted server does not resume it either).
    pub(super) fn priming_lost(&mut self) {
        let primed = self.process.live().is_some_and(|live| {
            matches!(
                live.priming,
                Priming::Prompt(_) | Priming::Clear(_) | Priming::Context(_)
            )
        });
        if primed && self.primed_away.as_deref() == Some(self.session.cli_session_id.as_str()) {
            let fresh = uuid::Uuid::new_v4().to_string();
            self.session.cli_session_id = fresh.clone();
            self.session.cli_session_stored = true;
            let id = self.session.id.clone();
            self.writer.write(
                move |c| {
                    crate::db::models::session::set_cli_session_id(c, &id, &fresh).map(|_| false)
                },
                None,
            );
        }
    }
}
