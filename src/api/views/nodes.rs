//! Node documents: a node of the cluster as `/admin/nodes` and `/health` show it.

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::db::models::instance::NodeView;
use serde::Serialize;
use utoipa::ToSchema;

/// One server instance of the cluster (a server alone lists itself).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeData {
    /// The instance: new at every start of a server.
    id: String,
    /// Stable across starts of the same server (kept in its `DATA_DIR`).
    node_id: String,
    /// `NODE_ADVERTISE_URL`: where the other nodes forward requests.
    advertise_url: Option<String>,
    /// Heard from within three heartbeats.
    alive: bool,
    /// Shutting down: it takes no new session.
    draining: bool,
    /// It sees every live node's mark in the workspace root (shared storage).
    workspace_shared: bool,
    /// Sessions whose live lease it holds.
    sessions: i64,
    /// The instance answering this request.
    this_node: bool,
    started_at: String,
    heartbeat_at: String,
}

impl NodeData {
    fn new(node: NodeView, me: &str) -> NodeData {
        NodeData {
            this_node: node.id == me,
            id: node.id,
            node_id: node.node_id,
            advertise_url: node.advertise_url,
            alive: node.alive,
            draining: node.draining,
            workspace_shared: node.workspace_shared,
            sessions: node.sessions,
            started_at: claude_code_api_core::domain::timestamp(&node.started_at),
            heartbeat_at: claude_code_api_core::domain::timestamp(&node.heartbeat_at),
        }
    }
}

impl NodeData {
    /// Alive and taking sessions.
    pub fn is_live(&self) -> bool {
        self.alive && !self.draining
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The instances on this database, oldest first.
pub async fn nodes(state: &AppState) -> Result<Vec<NodeData>, ApiError> {
    let rows = claude_code_api_core::services::nodes::list(&state.services).await?;
    let me = state.services.node.instance_id();
    Ok(rows.into_iter().map(|n| NodeData::new(n, me)).collect())
}
