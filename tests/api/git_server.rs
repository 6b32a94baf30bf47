//! Real git remotes for the tests: bare repositories served over smart HTTP
//! (`git http-backend` behind a small server, with basic auth when a token
//! is set), and a fake of the GitHub, GitLab and Gitea pull-request APIs
//! that records what it gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};

/// Runs git in `dir` with nothing of the machine's configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository `projects/repo.git` with one commit on `main`
/// holding `README` = `marker`; returns `projects`.
pub fn bare_repo(root: &Path, marker: &str) -> PathBuf {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), marker).unwrap();
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-qm", "one"]);
    let projects = root.join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            projects.join("repo.git").to_str().unwrap(),
        ],
    );
    projects
}

/// A smart-HTTP git server over the repositories in a folder.
pub struct GitServer {
    pub addr: SocketAddr,
    /// Every request's `Authorization` header ("" when none), in order.
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

impl GitServer {
    /// Serves `projects` on `bind`; with `token`, only requests with basic
    /// auth whose password is `token` (any user) are served, others get 401.
    pub fn start(bind: &str, projects: PathBuf, token: Option<&str>) -> GitServer {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = authorizations.clone();
        let token = token.map(str::to_owned);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (projects, seen, token) = (projects.clone(), seen.clone(), token.clone());
                std::thread::spawn(move || serve_cgi(stream, &projects, &seen, token.as_deref()));
            }
        });
        GitServer {
            addr,
            authorizations,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/repo.git", self.addr)
    }
}

fn read_request(stream: &TcpStream) -> (String, String, Vec<(String, String)>, Vec<u8>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = header(&headers, "content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    (method, target, headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn serve_cgi(stream: TcpStream, projects: &Path, seen: &Mutex<Vec<String>>, token: Option<&str>) {
    let (method, target, headers, body) = read_request(&stream);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let authorization = header(&headers, "authorization");
    seen.lock().unwrap().push(authorization.clone());
    let mut stream = stream;
    if let Some(token) = token {
        let password = authorization
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_owned()));
        if password.as_deref() != Some(token) {
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
    }
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", projects)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", header(&headers, "content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header(&headers, "content-encoding"),
        )
        .env("GIT_PROTOCOL", header(&headers, "git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        // Pushes are served too (receive-pack needs a user).
        .env("REMOTE_USER", "tester")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap().stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap();
    let cgi_head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let content = &out[split.0 + split.1..];
    let mut status = "200 OK".to_owned();
    let mut head = String::new();
    for line in cgi_head.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned()
            }
            Some(_) => head.push_str(&format!("{line}\r\n")),
            None => {}
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    );
    let _ = stream.write_all(content);
}

/// One request the fake provider got.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl ProviderRequest {
    pub fn header(&self, name: &str) -> String {
        header(&self.headers, name)
    }
}

/// A fake forge API: pull requests are answered 201 the way `kind`
/// (`github`, `gitlab`, `gitea`) answers them, numbered from 7.
pub struct FakeProvider {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<ProviderRequest>>>,
}

impl FakeProvider {
    pub fn start(kind: &'static str) -> FakeProvider {
        FakeProvider::answering(kind, None)
    }

    /// A forge that refuses every pull request with `status` and `message`
    /// in its own error shape.
    pub fn refusing(kind: &'static str, status: u16, message: &'static str) -> FakeProvider {
        FakeProvider::answering(kind, Some((status, message)))
    }

    fn answering(kind: &'static str, refusal: Option<(u16, &'static str)>) -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let (method, path, headers, body) = read_request(&stream);
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let number = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(ProviderRequest {
                        method,
                        path: path.clone(),
                        headers,
                        body,
                    });
                    6 + seen.len() as u64
                };
                if let Some((status, message)) = refusal {
                    let text = json!({"message": message}).to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    continue;
                }
                let answer = match kind {
                    "gitlab" => {
                        json!({"iid": number, "web_url": format!("https://forge.example/mr/{number}")})
                    }
                    _ => {
                        json!({"number": number, "html_url": format!("https://forge.example/pull/{number}")})
                    }
                };
                let text = answer.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        FakeProvider { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// An SSH server on loopback whose only key is a fresh one, serving the
/// host's git over `ssh://root@127.0.0.1:PORT/…` (root only: sshd switches
/// to the user it logs in).
pub struct SshServer {
    pub port: u16,
    /// The private key (OpenSSH format) that logs in.
    pub private_key: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SshServer {
    pub fn start() -> SshServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let keygen = |file: &str| {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path.join(file))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen");
        };
        keygen("host_key");
        keygen("user_key");
        std::fs::copy(path.join("user_key.pub"), path.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPidFile {dir}/sshd.pid\n",
            dir = path.display()
        );
        std::fs::write(path.join("sshd_config"), config).unwrap();
        // sshd wants its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(path.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts (apt-get install openssh-server)");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        SshServer {
            port,
            private_key: std::fs::read_to_string(path.join("user_key")).unwrap(),
            child,
            _dir: dir,
        }
    }

    pub fn url(&self, repo: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, repo.display())
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
