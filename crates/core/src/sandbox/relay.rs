//! The relay inside a CLI process's network namespace (`claude-code-api
//! sandbox-relay`, a hidden subcommand run by the sandbox): the namespace
//! has only its own loopback, so the relay listens on `127.0.0.1` ports
//! there and carries each connection to a unix socket of the server bound
//! into the sandbox (the model gateway, the egress proxy). It starts the CLI
//! as its child with its own stdio untouched and exits with the CLI's
//! status; the CLI's end is the sandbox's end, so the relay never outlives
//! it. It holds no secret and no privilege the agent lacks: it only saves
//! HTTP clients from speaking to unix sockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

/// The subcommand's name.
pub const COMMAND: &str = "sandbox-relay";

/// `--forward ADDR=SOCKET` pairs, then `--`, then the command to run.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub forwards: Vec<(SocketAddr, PathBuf)>,
    pub command: Vec<String>,
}

/// The arguments that run `command` behind `forwards`.
pub fn args(forwards: &[(SocketAddr, PathBuf)]) -> Vec<String> {
    let mut args = vec![COMMAND.to_owned()];
    for (addr, socket) in forwards {
        args.push("--forward".into());
        args.push(format!("{addr}={}", socket.display()));
    }
    args.push("--".into());
    args
}

pub fn parse(args: &[String]) -> Result<Plan, String> {
    let mut forwards = Vec::new();
    let mut rest = args.iter();
    loop {
        match rest.next().map(String::as_str) {
            Some("--forward") => {
                let spec = rest.next().ok_or("--forward needs ADDR=SOCKET")?;
                let (addr, socket) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--forward {spec}: expected ADDR=SOCKET"))?;
                let addr: SocketAddr =
                    addr.parse().map_err(|e| format!("--forward {spec}: {e}"))?;
                forwards.push((addr, PathBuf::from(socket)));
            }
            Some("--") => break,
            Some(other) => return Err(format!("unexpected argument {other:?}")),
            None => return Err("no command after --".into()),
        }
    }
    let command: Vec<String> = rest.cloned().collect();
    if command.is_empty() {
        return Err("no command after --".into());
    }
    Ok(Plan { forwards, command })
}

/// Runs the relay and the command; exits as the command did.
pub fn run(args: &[String]) -> ! {
    match parse(args).and_then(|plan| start(&plan)) {
        Ok(status) => exit_like(status),
        Err(e) => {
            eprintln!("{COMMAND}: {e}");
            std::process::exit(126)
        }
    }
}

fn start(plan: &Plan) -> Result<ExitStatus, String> {
    // Bound before the command starts, so its first connection finds them.
    let mut listeners = Vec::new();
    for (addr, socket) in &plan.forwards {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        listeners.push((listener, socket.clone()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || runtime.block_on(serve(listeners)));
    std::process::Command::new(&plan.command[0])
        .args(&plan.command[1..])
        .status()
        .map_err(|e| format!("cannot start {}: {e}", plan.command[0]))
}

async fn serve(listeners: Vec<(std::net::TcpListener, PathBuf)>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, socket) in listeners {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            continue;
        };
        tasks.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    // Out of descriptors, say: a pause instead of a spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let socket = socket.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(unix) = tokio::net::UnixStream::connect(&socket).await else {
                        return;
                    };
                    let (mut tcp, mut unix) = (tcp, unix);
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Exits with `status`'s code, or dies of its signal.
fn exit_like(status: ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    if let Some(signal) = status.signal() {
        // SAFETY: restoring the default action and raising a signal have no
        // preconditions; the process is meant to end here.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let forwards = vec![
            (
                "127.0.0.1:4810".parse().unwrap(),
                PathBuf::from("/run/x/gateway.sock"),
            ),
            (
                "127.0.0.1:3128".parse().unwrap(),
                PathBuf::from("/run/x/egress.sock"),
            ),
        ];
        let mut args = args(&forwards);
        assert_eq!(args[0], COMMAND);
        args.extend(["/bin/claude".to_string(), "--verbose".to_string()]);
        let plan = parse(&args[1..]).unwrap();
        assert_eq!(plan.forwards, forwards);
        assert_eq!(plan.command, ["/bin/claude", "--verbose"]);
        assert!(parse(&["--forward".into(), "x".into(), "--".into(), "a".into()]).is_err());
        assert!(parse(&["--".into()]).is_err());
    }
}
