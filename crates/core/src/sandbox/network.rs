//! The agent's network (`AGENT_NETWORK`). Each sandboxed CLI process gets a
//! network namespace of its own (`--unshare-net`): only its own loopback,
//! no route anywhere, none of the host's listeners. The server's unix
//! sockets are bound into it, and a relay (`relay.rs`) turns them into
//! loopback ports there: the model gateway at `127.0.0.1:4810` (the CLI's
//! `ANTHROPIC_BASE_URL`), and with `proxy` the egress proxy at
//! `127.0.0.1:3128` (`HTTP(S)_PROXY`), which lets through what the tenant's
//! allowlist names. This is the shape of Claude Code's own sandbox runtime
//! (bubblewrap, a network namespace, relays to a filtering proxy).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::egress::{EgressProxy, EgressSettings, Owner, ProcessListener};

/// `AGENT_NETWORK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A namespace of its own; only the model gateway is reachable.
    None,
    /// As `none`, plus the egress proxy with the tenant's allowlist.
    Proxy,
    /// The host's network, shared (no isolation: the agent reaches every
    /// listener of the host). For comparison, or where namespaces fail.
    Host,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Proxy => "proxy",
            NetworkMode::Host => "host",
        }
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<NetworkMode, String> {
        match s {
            "none" => Ok(NetworkMode::None),
            "proxy" => Ok(NetworkMode::Proxy),
            "host" => Ok(NetworkMode::Host),
            _ => Err("expected none, proxy or host".into()),
        }
    }
}

/// `AGENT_NETWORK` and `AGENT_EGRESS_*`.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    pub mode: NetworkMode,
    /// The program run as the relay inside the sandbox (with the
    /// `sandbox-relay` subcommand): this server's own executable unless set
    /// (a server embedded in another program, e.g. the tests, names it).
    pub relay_program: Option<PathBuf>,
    pub egress: EgressSettings,
}

/// Where the server's sockets and the relay appear inside the sandbox.
const INSIDE: &str = "/run/claude-code-api";
/// The model gateway inside the namespace.
pub const GATEWAY_PORT: u16 = 4810;
/// The egress proxy inside the namespace (the customary proxy port).
pub const PROXY_PORT: u16 = 3128;
/// Names that stay inside the namespace (its own loopback): a server the
/// agent starts itself is reached directly, not through the proxy.
const NO_PROXY: &str = "localhost,127.0.0.1,::1";

/// The model gateway's unix socket, in the server's `DATA_DIR`.
pub fn gateway_socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sandbox").join("gateway.sock")
}

/// What every CLI process's network is made of.
#[derive(Debug)]
pub struct AgentNetwork {
    mode: NetworkMode,
    relay: PathBuf,
    gateway_socket: PathBuf,
    /// The proxy and the folder of its per-process sockets, with `proxy`.
    egress: Option<(EgressProxy, PathBuf)>,
}

/// One process's part: the sandbox arguments, the relay's command line,
/// the CLI's variables, and its proxy socket (dropped with the process).
#[derive(Debug)]
pub struct ProcessNetwork {
    pub namespace_args: Vec<String>,
    pub relay_args: Vec<String>,
    pub env: BTreeMap<String, String>,
    _egress: Option<ProcessListener>,
}

impl AgentNetwork {
    /// `None` with `AGENT_NETWORK=host`. The gateway's socket
    /// (`gateway_socket_path`) is bound by the server before.
    pub fn new(
        settings: &NetworkSettings,
        data_dir: &Path,
        egress: Option<EgressProxy>,
    ) -> Result<Option<AgentNetwork>, String> {
        if settings.mode == NetworkMode::Host {
            return Ok(None);
        }
        let relay = match &settings.relay_program {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find this server's executable for the relay: {e}"))?,
        };
        let relay = std::fs::canonicalize(&relay)
            .map_err(|e| format!("the relay {} is not there: {e}", relay.display()))?;
        let egress = match (settings.mode, egress) {
            (NetworkMode::Proxy, Some(proxy)) => {
                let dir = data_dir.join("sandbox").join("egress");
                // Sockets of processes a previous run did not end cleanly.
                let _ = std::fs::remove_dir_all(&dir);
                Some((proxy, dir))
            }
            (NetworkMode::Proxy, None) => {
                return Err("AGENT_NETWORK=proxy needs the egress proxy".into())
            }
            _ => None,
        };
        Ok(Some(AgentNetwork {
            mode: settings.mode,
            relay,
            gateway_socket: gateway_socket_path(data_dir),
            egress,
        }))
    }

    pub fn mode(&self) -> NetworkMode {
        self.mode
    }

    /// The network of one process of `owner` (`None`: the start-up probe,
    /// which gets no proxy).
    pub fn process(&self, owner: Option<&Owner>) -> std::io::Result<ProcessNetwork> {
        let inside = Path::new(INSIDE);
        let relay_inside = inside.join("relay");
        let gateway_inside = inside.join("gateway.sock");
        let mut namespace_args: Vec<String> = [
            "--unshare-net",
            "--perms",
            "0755",
            "--dir",
            "/run",
            "--perms",
            "0755",
            "--dir",
            INSIDE,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut bind = |flag: &str, from: &Path, to: &Path| {
            namespace_args.extend([
                flag.to_owned(),
                from.to_string_lossy().into_owned(),
                to.to_string_lossy().into_owned(),
            ]);
        };
        bind("--ro-bind", &self.relay, &relay_inside);
        bind("--bind", &self.gateway_socket, &gateway_inside);
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut forwards = vec![(loopback(GATEWAY_PORT), gateway_inside)];
        let mut env = BTreeMap::from([(
            "ANTHROPIC_BASE_URL".to_owned(),
            format!("http://{}", loopback(GATEWAY_PORT)),
        )]);
        let mut listener = None;
        if let (Some((proxy, dir)), Some(owner)) = (&self.egress, owner) {
            let name = &uuid::Uuid::new_v4().simple().to_string()[..16];
            let socket = dir.join(format!("{name}.sock"));
            listener = Some(proxy.listen(&socket, owner.clone())?);
            let egress_inside = inside.join("egress.sock");
            bind("--bind", &socket, &egress_inside);
            forwards.push((loopback(PROXY_PORT), egress_inside));
            let url = format!("http://{}", loopback(PROXY_PORT));
            for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
                env.insert(name.to_owned(), url.clone());
                env.insert(name.to_ascii_lowercase(), url.clone());
            }
            env.insert("NO_PROXY".to_owned(), NO_PROXY.to_owned());
            env.insert("no_proxy".to_owned(), NO_PROXY.to_owned());
        }
        let mut relay_args = vec![relay_inside.to_string_lossy().into_owned()];
        relay_args.extend(super::relay::args(&forwards));
        Ok(ProcessNetwork {
            namespace_args,
            relay_args,
            env,
            _egress: listener,
        })
    }
}
