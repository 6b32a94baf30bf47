//! One agent user per tenant (when the server is root): tenant slot `n`
//! runs as `AGENT_UID + n` / `AGENT_GID + n`, so file modes and the
//! kernel's ptrace rules keep tenants apart even if something else fails.
//! Slots live in the database (the same on every node) and are cached.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use super::SandboxSettings;
use crate::db::DbPool;

#[derive(Debug)]
pub struct AgentUsers {
    first: (u32, u32),
    count: u32,
    pool: Option<DbPool>,
    cache: RwLock<HashMap<String, (u32, u32)>>,
    /// Where each agent user's `/etc/passwd` and `/etc/group` are written.
    identity_dir: PathBuf,
    written: Mutex<HashSet<u32>>,
}

impl AgentUsers {
    /// No agent users: the agent is the server's own user.
    pub fn none(settings: &SandboxSettings, data_dir: &Path) -> AgentUsers {
        AgentUsers {
            first: (settings.agent_uid, settings.agent_gid),
            count: settings.agent_uid_count,
            pool: None,
            cache: RwLock::default(),
            identity_dir: data_dir.join("sandbox").join("users"),
            written: Mutex::default(),
        }
    }

    pub fn per_tenant(settings: &SandboxSettings, data_dir: &Path, pool: DbPool) -> AgentUsers {
        AgentUsers {
            pool: Some(pool),
            ..AgentUsers::none(settings, data_dir)
        }
    }

    /// The first user of the range (the start-up probe runs as it).
    pub fn first(&self) -> (u32, u32) {
        self.first
    }

    /// `uid-uid:gid-gid`, for `/health`.
    pub fn range(&self) -> String {
        let last = self.count.saturating_sub(1);
        format!(
            "{}-{}:{}-{}",
            self.first.0,
            self.first.0.saturating_add(last),
            self.first.1,
            self.first.1.saturating_add(last)
        )
    }

    /// `tenant_id`'s user, given now when it has none.
    pub async fn of(&self, tenant_id: &str) -> io::Result<(u32, u32)> {
        if let Some(ids) = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(tenant_id).copied())
        {
            return Ok(ids);
        }
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| io::Error::other("no agent users"))?;
        let tenant = tenant_id.to_owned();
        let slot = crate::db::run(pool, move |c| {
            crate::db::models::agent_user::slot_for(c, &tenant)
        })
        .await
        .map_err(|e| io::Error::other(format!("cannot give the tenant an agent user: {e}")))?;
        let ids = u32::try_from(slot)
            .ok()
            .filter(|s| *s < self.count)
            .and_then(|s| Some((self.first.0.checked_add(s)?, self.first.1.checked_add(s)?)))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "every agent user of the range is taken (AGENT_UID_COUNT={})",
                    self.count
                ))
            })?;
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(tenant_id.to_owned(), ids);
        }
        Ok(ids)
    }

    /// `/etc/passwd` and `/etc/group` naming the agent user `uid`/`gid`, so
    /// tools that look their user up (git, ssh, Python's getpass) find one.
    /// Written once per user and start.
    pub fn identity(&self, uid: u32, gid: u32) -> io::Result<(PathBuf, PathBuf)> {
        let dir = self.identity_dir.join(uid.to_string());
        let files = (dir.join("passwd"), dir.join("group"));
        let mut written = self
            .written
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        if written.contains(&uid) {
            return Ok(files);
        }
        std::fs::create_dir_all(&dir)?;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let taken = |table: &str, id: u32| {
            table
                .lines()
                .any(|l| l.split(':').nth(2) == Some(&id.to_string()))
        };
        let mut passwd = passwd;
        if !taken(&passwd, uid) {
            passwd.push_str(&format!("agent:x:{uid}:{gid}:agent:/tmp:/bin/bash\n"));
        }
        let mut group = group;
        if !taken(&group, gid) {
            group.push_str(&format!("agent:x:{gid}:\n"));
        }
        std::fs::write(&files.0, passwd)?;
        std::fs::write(&files.1, group)?;
        written.insert(uid);
        Ok(files)
    }
}
