//! Files of a workspace: upload (streamed, size-limited, atomic), list,
//! download (Range, ETag), delete, archive; every refusal; and confinement
//! against traversal, encodings and the symlinks the agent itself makes.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const BOUNDARY: &str = "cca-test-boundary-5f2a9c";

/// One multipart part: form field name, optional filename, bytes.
pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub data: &'a [u8],
}

pub fn file_part<'a>(filename: &'a str, data: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        filename: Some(filename),
        data,
    }
}

/// A multipart/form-data body written by hand, so tests control every byte
/// (hostile filenames included).
pub fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", part.name).as_bytes(),
            ),
        }
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// POST a multipart body to `/api/v1/sessions/{session}/files{query}`.
pub async fn upload(
    app: &TestApp,
    key: &str,
    session: &str,
    query: &str,
    parts: &[Part<'_>],
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/sessions/{session}/files{query}")))
        .header("X-API-Key", key)
        .header("content-type", multipart_type())
        .body(multipart(parts))
        .send()
        .await
        .unwrap()
}

/// A GET sent byte for byte over TCP: HTTP clients normalise `..` and
/// `%2e%2e` away before sending, attackers do not.
pub async fn raw_get(app: &TestApp, path: &str, key: &str) -> (u16, String) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn list(app: &TestApp, key: &str, session: &str, query: &str) -> (u16, Value) {
    json(
        app.get(&format!("/api/v1/sessions/{session}/files{query}"), key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn paths_of(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// Every entry below `dir`, hidden ones included.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[actix_web::test]
async fn upload_list_download_delete_round_trip() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "f").await;
    let data = binary(300_000);

    // Binary upload into a folder given as a query parameter.
    let res = upload(
        &app,
        ALICE,
        "f",
        "?path=out/bin",
        &[file_part("data.bin", &data)],
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["path"], "out/bin/data.bin");
    assert_eq!(body["data"]["name"], "data.bin");
    assert_eq!(body["data"]["size"], 300_000);
    let on_disk = app.workspace("alice", "f").join("out/bin/data.bin");
    assert_eq!(std::fs::read(&on_disk).unwrap(), data);

    // The folder as a form field (after the file part, even).
    let res = upload(
        &app,
        ALICE,
        "f",
        "",
        &[
            file_part("notes.txt", b"hello notes\n"),
            Part {
                name: "path",
                filename: None,
                data: b"docs",
            },
        ],
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["path"], "docs/notes.txt");

    // Download: the same bytes, a content type, a disposition, an ETag.
    let res = app
        .get("/api/v1/sessions/f/files/out/bin/data.bin", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains("data.bin"), "{disposition}");
    assert_eq!(headers["accept-ranges"], "bytes");
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);

    let res = app
        .get("/api/v1/sessions/f/files/docs/notes.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(res.text().await.unwrap(), "hello notes\n");

    // A name that is not ASCII survives the round trip and the header.
    let res = upload(
        &app,
        ALICE,
        "f",
        "?path=docs",
        &[file_part("résumé.txt", b"cv")],
    )
    .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["path"], "docs/résumé.txt");
    let res = app
        .get("/api/v1/sessions/f/files/docs/r%C3%A9sum%C3%A9.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9.txt"),
        "{disposition}"
    );
    assert_eq!(res.text().await.unwrap(), "cv");
    let res = app
        .delete("/api/v1/sessions/f/files/docs/r%C3%A9sum%C3%A9.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Range and conditional requests.
    let res = app
        .get("/api/v1/sessions/f/files/out/bin/data.bin", ALICE)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[1000..2000]);
    let res = app
        .get("/api/v1/sessions/f/files/out/bin/data.bin", ALICE)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // An existing file is replaced only with overwrite=true.
    let res = upload(
        &app,
        ALICE,
        "f",
        "?path=docs",
        &[file_part("notes.txt", b"v2")],
    )
    .await;
    let body = assert_problem(res, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("overwrite"),
        "{body}"
    );
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "f").join("docs/notes.txt")).unwrap(),
        "hello notes\n"
    );
    let res = upload(
        &app,
        ALICE,
        "f",
        "?path=docs&overwrite=true",
        &[file_part("notes.txt", b"v2")],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        std::fs::read_to_string(app.workspace("alice", "f").join("docs/notes.txt")).unwrap(),
        "v2"
    );

    // Listing: top level by default, the tree with recursive, hidden on request.
    std::fs::write(app.workspace("alice", "f").join(".secret"), "s").unwrap();
    let (status, body) = list(&app, ALICE, "f", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(paths_of(&body), ["docs", "out"]);
    assert_eq!(body["data"][0]["type"], "directory");
    assert_eq!(body["pagination"]["total"], 2);
    let (_, body) = list(&app, ALICE, "f", "?recursive=true").await;
    assert_eq!(
        paths_of(&body),
        [
            "docs",
            "docs/notes.txt",
            "out",
            "out/bin",
            "out/bin/data.bin"
        ]
    );
    let file = &body["data"][4];
    assert_eq!(file["name"], "data.bin");
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 300_000);
    assert!(file["modified"].as_str().unwrap().ends_with('Z'), "{file}");
    let (_, body) = list(&app, ALICE, "f", "?hidden=true").await;
    assert_eq!(paths_of(&body), [".secret", "docs", "out"]);
    let (_, body) = list(&app, ALICE, "f", "?path=out&recursive=true&limit=1&page=2").await;
    assert_eq!(paths_of(&body), ["out/bin/data.bin"]);
    assert_eq!(body["pagination"]["total"], 2);
    assert_eq!(body["pagination"]["pages"], 2);

    // Delete a file, then a folder.
    let res = app
        .delete("/api/v1/sessions/f/files/docs/notes.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .get("/api/v1/sessions/f/files/docs/notes.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
    let res = app
        .delete("/api/v1/sessions/f/files/out", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!app.workspace("alice", "f").join("out").exists());
    let res = app
        .delete("/api/v1/sessions/f/files/out", ALICE)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not-found").await;
}

#[actix_web::test]
async fn archive_streams_a_folder_as_tar_gz() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "a").await;
    let ws = app.workspace("alice", "a");
    std::fs::create_dir_all(ws.join("result/sub")).unwrap();
    std::fs::write(ws.join("result/report.md"), "# done\n").unwrap();
    let data = binary(200_000);
    std::fs::write(ws.join("result/sub/blob.bin"), &data).unwrap();
    std::fs::write(ws.join("elsewhere.txt"), "not in result").unwrap();

    let res = app
        .get("/api/v1/sessions/a/archive?path=result", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("result.tar.gz"));
    let bytes = res.bytes().await.unwrap();
    let entries = untar(&bytes);
    let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "result/",
            "result/report.md",
            "result/sub",
            "result/sub/blob.bin"
        ]
    );
    assert_eq!(entries[1].1, b"# done\n");
    assert_eq!(entries[3].1, data);

    // The whole workspace, named after the session.
    let res = app
        .get("/api/v1/sessions/a/archive", ALICE)
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("a.tar.gz"));
    let entries = untar(&res.bytes().await.unwrap());
    assert!(entries.iter().any(|(p, _)| p == "a/elsewhere.txt"));

    for (query, status, kind) in [
        ("?path=result/report.md", 409, "conflict"),
        ("?path=missing", 404, "not-found"),
        ("?path=..", 400, "bad-request"),
        ("?path=/etc", 400, "bad-request"),
    ] {
        let res = app
            .get(&format!("/api/v1/sessions/a/archive{query}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_problem(res, status, kind).await;
    }
}

/// `(path, content)` of every entry of a `.tar.gz`.
pub fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (path, content)
        })
        .collect()
}

#[actix_web::test]
async fn traversal_encodings_and_bad_names_are_refused() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "t").await;
    std::fs::write(app.workspace("alice", "t").join("ok.txt"), "ok").unwrap();
    // A neighbour's file that traversal would reach.
    app.create_session(ALICE, "neighbour").await;
    std::fs::write(
        app.workspace("alice", "neighbour").join("private.txt"),
        "NEIGHBOUR-SECRET",
    )
    .unwrap();

    let base = "/api/v1/sessions/t/files";
    for path in [
        format!("{base}/../neighbour/private.txt"),
        format!("{base}/%2e%2e/neighbour/private.txt"),
        format!("{base}/%2E%2E/%2E%2E/%2E%2E/etc/passwd"),
        format!("{base}/..%2fneighbour%2fprivate.txt"),
        format!("{base}/%2e%2e%2fneighbour%2fprivate.txt"),
        format!("{base}/%252e%252e/neighbour/private.txt"),
        format!("{base}//etc/passwd"),
        format!("{base}/%2Fetc%2Fpasswd"),
        format!("{base}/ok.txt%00.png"),
        format!("{base}?path=../neighbour"),
        format!("{base}?path=%2e%2e/neighbour"),
        format!("{base}?path=/etc"),
        format!("{base}?path=a%00b"),
        "/api/v1/sessions/t/archive?path=%2e%2e".to_string(),
        "/api/v1/sessions/t/archive?path=/etc".to_string(),
    ] {
        let (status, text) = raw_get(&app, &path, ALICE).await;
        assert!(
            status == 400 || status == 404,
            "{path}: expected 400 or 404, got {status}: {text}"
        );
        assert!(!text.contains("NEIGHBOUR-SECRET"), "{path} leaked: {text}");
        assert!(!text.contains("root:"), "{path} leaked: {text}");
    }
    // The legitimate file is still served by the same route.
    let (status, text) = raw_get(&app, &format!("{base}/ok.txt"), ALICE).await;
    assert_eq!(status, 200, "{text}");

    // Uploads with hostile names or folders write nothing anywhere.
    let before = tree(&app.workspaces());
    for (query, filename) in [
        ("", "../escape.txt"),
        ("", "a/b.txt"),
        ("", ".."),
        ("", "."),
        ("", "/etc/evil"),
        ("?path=../neighbour", "x.txt"),
        ("?path=/tmp", "x.txt"),
        ("?path=%2e%2e", "x.txt"),
        ("?path=a%00b", "x.txt"),
    ] {
        let res = upload(&app, ALICE, "t", query, &[file_part(filename, b"evil")]).await;
        let status = res.status().as_u16();
        assert!(
            status == 400 || status == 422,
            "{query} {filename}: {status} {}",
            res.text().await.unwrap()
        );
    }
    // Missing file part, unknown parts, two files, no filename.
    for parts in [
        vec![Part {
            name: "path",
            filename: None,
            data: b"x",
        }],
        vec![Part {
            name: "other",
            filename: None,
            data: b"x",
        }],
        vec![file_part("a.txt", b"1"), file_part("b.txt", b"2")],
        vec![Part {
            name: "file",
            filename: None,
            data: b"x",
        }],
    ] {
        let res = upload(&app, ALICE, "t", "", &parts).await;
        assert_problem(res, 422, "validation-error").await;
    }
    let res = upload(
        &app,
        ALICE,
        "t",
        "?overwrite=maybe",
        &[file_part("a.txt", b"1")],
    )
    .await;
    assert_problem(res, 422, "validation-error").await;
    // Not multipart at all.
    let res = app
        .client
        .post(app.url("/api/v1/sessions/t/files"))
        .header("X-API-Key", ALICE)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(tree(&app.workspaces()), before, "nothing was written");

    // Deleting through traversal or the workspace itself.
    let (status, _) = raw_delete(&app, &format!("{base}/%2e%2e/neighbour/private.txt")).await;
    assert!(status == 400 || status == 404, "{status}");
    let res = app.delete(&format!("{base}/"), ALICE).send().await.unwrap();
    assert_problem(res, 422, "validation-error").await;
    assert!(app
        .workspace("alice", "neighbour")
        .join("private.txt")
        .exists());

    // A backslash is named as what it is.
    let res = app
        .get(&format!("{base}/a%5Cb"), ALICE)
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 400, "bad-request").await;
    assert!(body["detail"].as_str().unwrap().contains("'\\'"), "{body}");

    // Downloading a folder points to the archive instead.
    std::fs::create_dir_all(app.workspace("alice", "t").join("dir")).unwrap();
    let res = app.get(&format!("{base}/dir"), ALICE).send().await.unwrap();
    let body = assert_problem(res, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("archive"),
        "{body}"
    );
}

async fn raw_delete(app: &TestApp, path: &str) -> (u16, String) {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {ALICE}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The agent, through the real CLI, plants symlinks to the server's files;
/// none of them leads anywhere through the API.
#[actix_web::test]
async fn symlinks_the_agent_creates_never_lead_out() {
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "s").await;
    app.create_session(ALICE, "other").await;
    std::fs::write(
        app.workspace("alice", "other").join("private.txt"),
        "OTHER-SESSION-SECRET",
    )
    .unwrap();
    app.chat_ok(
        ALICE,
        "s",
        "[[bash]]ln -s /etc/passwd leak && ln -s /etc etc && ln -s ../other sibling && \
         mkdir -p out && ln -s /etc/passwd out/passwd && ln -s ../../.. out/up && \
         echo fine > out/ok.txt && ln -s ok.txt out/alias[[/bash]]",
    )
    .await;
    let ws = app.workspace("alice", "s");
    assert!(
        std::fs::symlink_metadata(ws.join("leak"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the agent really made the link"
    );

    for path in [
        "leak",
        "etc/passwd",
        "sibling/private.txt",
        "out/passwd",
        "out/up/etc/passwd",
    ] {
        let res = app
            .get(&format!("/api/v1/sessions/s/files/{path}"), ALICE)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("root:") && !text.contains("OTHER-SESSION-SECRET"));
    }
    // An inside link still works, to the file inside.
    let res = app
        .get("/api/v1/sessions/s/files/out/alias", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "fine\n");

    // Listing shows no way out, even recursively with hidden files.
    let (_, body) = list(&app, ALICE, "s", "?recursive=true&hidden=true").await;
    let paths = paths_of(&body);
    for outward in ["leak", "etc", "sibling", "out/passwd", "out/up"] {
        assert!(
            !paths.contains(&outward.to_string()),
            "{outward} listed: {paths:?}"
        );
    }
    assert!(paths.contains(&"out/ok.txt".to_string()), "{paths:?}");
    for path in ["etc", "sibling", "out/up"] {
        let (status, _) = list(&app, ALICE, "s", &format!("?path={path}")).await;
        assert_eq!(status, 404, "{path}");
    }

    // The archive holds the real files and none of the links' targets.
    let res = app
        .get("/api/v1/sessions/s/archive", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let entries = untar(&res.bytes().await.unwrap());
    let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&"s/out/ok.txt"), "{names:?}");
    for (path, content) in &entries {
        let text = String::from_utf8_lossy(content);
        assert!(
            !text.contains("root:") && !text.contains("OTHER-SESSION-SECRET"),
            "{path} carries a link target's content"
        );
        assert!(
            !path.ends_with("leak") && !path.contains("passwd"),
            "{path}"
        );
    }
    let res = app
        .get("/api/v1/sessions/s/archive?path=etc", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Deleting through a link that leads out touches nothing outside.
    let res = app
        .delete("/api/v1/sessions/s/files/etc/passwd", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .delete("/api/v1/sessions/s/files/sibling/private.txt", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(app.workspace("alice", "other").join("private.txt").exists());

    // Overwriting through a link replaces the link, never its target.
    let res = upload(
        &app,
        ALICE,
        "s",
        "?overwrite=true",
        &[file_part("leak", b"mine")],
    )
    .await;
    assert_eq!(res.status(), 201);
    assert!(std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("root"));
    assert_eq!(std::fs::read_to_string(ws.join("leak")).unwrap(), "mine");
    // Uploading into a linked folder that leads out is refused.
    let res = upload(
        &app,
        ALICE,
        "s",
        "?path=etc",
        &[file_part("evil.conf", b"x")],
    )
    .await;
    assert_eq!(res.status(), 404);
    assert!(!std::path::Path::new("/etc/evil.conf").exists());
}

#[actix_web::test]
async fn a_2_gb_upload_is_refused_while_streaming_and_leaves_nothing() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "big").await;
    const TOTAL: u64 = 2 * 1024 * 1024 * 1024;
    const CHUNK: usize = 1024 * 1024;
    // A generated 2 GiB body (zeros, like a sparse file), streamed chunked:
    // the server cannot know its size up front and must count while reading.
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let zeros = bytes::Bytes::from(vec![0u8; CHUNK]);
    let head = bytes::Bytes::from(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.bin\"\r\n\r\n"
    ));
    let tail = bytes::Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
    let chunks = (TOTAL / CHUNK as u64) as usize;
    let stream = futures_util::stream::iter(
        std::iter::once(head)
            .chain(std::iter::repeat_n(zeros, chunks))
            .chain(std::iter::once(tail))
            .map(move |b| {
                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(b)
            }),
    );
    let res = app
        .client
        .post(app.url("/api/v1/sessions/big/files"))
        .header("X-API-Key", ALICE)
        .header("content-type", multipart_type())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    let pulled = sent.load(Ordering::Relaxed);
    match res {
        Ok(res) => {
            let body = assert_problem(res, 413, "payload-too-large").await;
            assert!(
                body["detail"].as_str().unwrap().contains("25 MiB"),
                "{body}"
            );
        }
        // The server may close the connection while the client still sends;
        // then the client sees that instead of reading the 413.
        Err(e) => assert!(pulled < TOTAL, "the whole body was read: {e}"),
    }
    assert!(
        pulled < 256 * 1024 * 1024,
        "the server kept reading far past the limit: {pulled} bytes"
    );
    // Nothing half-written remains, hidden temporary files included.
    let left = tree(&app.workspace("alice", "big"));
    assert!(left.is_empty(), "{left:?}");
    // The session still takes a normal upload afterwards.
    let res = upload(&app, ALICE, "big", "", &[file_part("small.bin", b"ok")]).await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn max_upload_mb_is_enforced_exactly_and_a_declared_length_early() {
    let app = TestApp::spawn_with(Options::fake().var("MAX_UPLOAD_MB", "1")).await;
    app.create_session(ALICE, "lim").await;
    let exactly = binary(1024 * 1024);
    let res = upload(&app, ALICE, "lim", "", &[file_part("max.bin", &exactly)]).await;
    assert_eq!(res.status(), 201);
    let over = binary(1024 * 1024 + 1);
    let res = upload(
        &app,
        ALICE,
        "lim",
        "?path=x",
        &[file_part("over.bin", &over)],
    )
    .await;
    let body = assert_problem(res, 413, "payload-too-large").await;
    assert!(body["detail"].as_str().unwrap().contains("1 MiB"), "{body}");
    // A declared Content-Length far past the limit is refused unread.
    let res = app
        .client
        .post(app.url("/api/v1/sessions/lim/files"))
        .header("X-API-Key", ALICE)
        .header("content-type", multipart_type())
        .body(multipart(&[file_part("big.bin", &binary(3 * 1024 * 1024))]))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload-too-large").await;
    let left = tree(&app.workspace("alice", "lim"));
    assert_eq!(
        left,
        ["max.bin"],
        "only the accepted file, not even the folder"
    );
}

#[actix_web::test]
async fn every_files_route_is_tenant_scoped() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "mine").await;
    std::fs::write(app.workspace("alice", "mine").join("a.txt"), "ALICE-DATA").unwrap();
    let requests = [
        app.get("/api/v1/sessions/mine/files", BOB),
        app.get("/api/v1/sessions/mine/files/a.txt", BOB),
        app.delete("/api/v1/sessions/mine/files/a.txt", BOB),
        app.get("/api/v1/sessions/mine/archive", BOB),
        app.client
            .post(app.url("/api/v1/sessions/mine/files"))
            .header("X-API-Key", BOB)
            .header("content-type", multipart_type())
            .body(multipart(&[file_part("b.txt", b"bob")])),
    ];
    for request in requests {
        let res = request.send().await.unwrap();
        let body = assert_problem(res, 404, "not-found").await;
        assert!(!body.to_string().contains("ALICE-DATA"));
    }
    assert_eq!(tree(&app.workspace("alice", "mine")), ["a.txt"]);
    // And no key at all is a 401.
    let res = app
        .client
        .get(app.url("/api/v1/sessions/mine/files/a.txt"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

#[actix_web::test]
async fn an_upload_abandoned_midway_leaves_nothing() {
    let app = TestApp::spawn_with(Options::fake()).await;
    app.create_session(ALICE, "gone").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"part.bin\"\r\n\r\n"
    );
    let request = format!(
        "POST /api/v1/sessions/gone/files HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {ALICE}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n{head}",
        multipart_type(),
        head.len() + 10 * 1024 * 1024
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&vec![7u8; 1024 * 1024]).await.unwrap();
    let ws = app.workspace("alice", "gone");
    let started = eventually(10, || async { !tree(&ws).is_empty() }).await;
    assert!(started, "the upload had begun writing its temporary file");
    drop(stream);
    let cleaned = eventually(10, || async { tree(&ws).is_empty() }).await;
    assert!(cleaned, "left behind: {:?}", tree(&ws));
}

/// Names the agent makes with control characters download and archive
/// (RFC 6266 `filename*`, never a 500), and archives carry no setuid,
/// setgid or sticky bit the agent set.
#[actix_web::test]
async fn odd_names_and_special_bits_the_agent_makes_are_served_safely() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.create_session(ALICE, "odd").await;
    app.chat_ok(
        ALICE,
        "odd",
        "[[bash]]mkdir -p out \"$(printf 'dir\\001x')\" && printf tabbed > \"out/$(printf 'a\\tb\\001c.txt')\" && \
         printf lined > \"out/$(printf 'new\\nline')\" && printf inner > \"$(printf 'dir\\001x')/f\" && \
         printf '#!/bin/sh\\n' > out/run.sh && chmod 6755 out/run.sh && chmod 1777 out[[/bash]]",
    )
    .await;
    let ws = app.workspace("alice", "odd");
    let mode = |p: &str| std::fs::metadata(ws.join(p)).unwrap().permissions().mode();
    assert_eq!(
        mode("out/run.sh") & 0o7777,
        0o6755,
        "the agent set the bits"
    );
    assert_eq!(mode("out") & 0o7777, 0o1777);
    assert!(ws.join("out/a\tb\u{1}c.txt").is_file());

    // Downloads: the exact name in `filename*`, a printable fallback.
    for (path, name, content) in [
        ("out/a%09b%01c.txt", "a%09b%01c.txt", "tabbed"),
        ("out/new%0Aline", "new%0Aline", "lined"),
    ] {
        let res = app
            .get(&format!("/api/v1/sessions/odd/files/{path}"), ALICE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let disposition = res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            disposition.contains(&format!("filename*=UTF-8''{name}")),
            "{disposition}"
        );
        assert!(!disposition.chars().any(|c| c.is_ascii_control()));
        assert_eq!(res.text().await.unwrap(), content);
    }

    // The archive keeps the names, drops the special bits.
    let res = app
        .get("/api/v1/sessions/odd/archive?path=out", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut modes = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        modes.insert(path, entry.header().mode().unwrap());
    }
    assert_eq!(modes["out/run.sh"], 0o755, "{modes:?}");
    assert_eq!(modes["out/"] & 0o7000, 0, "{modes:?}");
    assert!(modes.contains_key("out/a\tb\u{1}c.txt"), "{modes:?}");
    assert!(modes.contains_key("out/new\nline"), "{modes:?}");
    assert!(modes.values().all(|m| m & 0o7000 == 0), "{modes:?}");

    // A folder with such a name archives too, named in `filename*`.
    let res = app
        .get("/api/v1/sessions/odd/archive?path=dir%01x", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''dir%01x.tar.gz"),
        "{disposition}"
    );
    let entries = untar(&res.bytes().await.unwrap());
    assert!(entries
        .iter()
        .any(|(p, c)| p == "dir\u{1}x/f" && c == b"inner"));
}

/// A client that stops reading an archive (its connection still open) does
/// not hold the thread writing it: after `ARCHIVE_STALL_SECONDS` the
/// download is abandoned and ends with an error, never as a complete file.
#[actix_web::test]
async fn an_archive_whose_client_stops_reading_is_abandoned() {
    let app = TestApp::spawn_with(Options::fake().var("ARCHIVE_STALL_SECONDS", "2")).await;
    app.create_session(ALICE, "big").await;
    let ws = app.workspace("alice", "big");
    // Incompressible, so the archive is as large as the files.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..6 {
        let data: Vec<u8> = (0..8 * 1024 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(ws.join(format!("blob-{i}.bin")), data).unwrap();
    }
    let mut res = app
        .get("/api/v1/sessions/big/archive", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut received = res.chunk().await.unwrap().expect("a first chunk").len();
    // Reads nothing for longer than the stall limit, then tries again.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let ended = loop {
        match res.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err(),
        "the stalled download ran to its end ({received} bytes)"
    );
    assert!(received < 48 * 1024 * 1024, "{received}");

    // A client that keeps reading gets the whole archive.
    let res = app
        .get("/api/v1/sessions/big/archive", ALICE)
        .send()
        .await
        .unwrap();
    let entries = untar(&res.bytes().await.unwrap());
    assert_eq!(entries.len(), 7);
}
