//! A folder of the workspace as a streamed `.tar.gz`. Regular files and
//! folders only: symlinks are never followed and never stored, so nothing
//! outside the workspace (nor the target of a link into it) ends up in an
//! archive through one. Modes keep the permission bits only: setuid,
//! setgid and sticky bits the agent set never reach whoever unpacks it.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cap_std::fs::{Dir, MetadataExt};

use super::walk::Entry;
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::sync::mpsc;

/// rwx for owner, group and others; never setuid, setgid or sticky.
const PERMISSION_BITS: u32 = 0o777;

/// Bytes per chunk handed to the HTTP response.
const CHUNK: usize = 64 * 1024;

/// Writes the archive of folder `rel` (entries under `prefix/`) into `out`.
/// The folder is opened once and walked by `files::walk`, so an agent
/// swapping folders for links meanwhile can only make entries vanish from
/// the archive, never lead it elsewhere or cut it short. Only a failing `out`
/// (the client gone) stops it. Blocking.
pub fn write_tar_gz<W: Write>(root: &Dir, rel: &Path, prefix: &str, out: W) -> io::Result<W> {
    let folder = if rel.as_os_str().is_empty() {
        root.try_clone()?
    } else {
        root.open_dir(rel)?
    };
    let gz = GzEncoder::new(out, Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, format!("{prefix}/"), io::empty())?;
    add_folder(&mut tar, &folder, Path::new(prefix))?;
    tar.into_inner()?.finish()
}

/// Adds the entries of `dir` under `in_archive` (see `files::walk`).
/// Errors reading the workspace skip the entry concerned; errors writing
/// end the archive.
fn add_folder<W: Write>(tar: &mut tar::Builder<W>, dir: &Dir, in_archive: &Path) -> io::Result<()> {
    super::walk::walk(dir, &mut |entry| match entry {
        Entry::Folder { path, meta } => {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(meta.mode() & PERMISSION_BITS);
            header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
            header.set_size(0);
            tar.append_data(&mut header, in_archive.join(path), io::empty())
        }
        Entry::File { path, file, meta } => {
            let len = meta.len();
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(meta.mode() & PERMISSION_BITS);
            header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
            header.set_size(len);
            let reader = Exactly {
                inner: file.into_std().take(len),
                remaining: len,
            };
            tar.append_data(&mut header, in_archive.join(path), reader)
        }
    })
}

/// Exactly `remaining` bytes: a file that shrank (or failed) while being
/// read is padded with zeros, so the tar stays well formed.
struct Exactly<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        // A file that cannot be read on (shrunk, an I/O error) ends in
        // zeros: one bad file must not cut the whole archive short.
        let mut n = self.inner.read(&mut buf[..max]).unwrap_or(0);
        if n == 0 {
            buf[..max].fill(0);
            n = max;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A `Write` that hands chunks to an async receiver (the HTTP body),
/// waiting while it is full, but never longer than `stall`: a client that
/// stops reading (and keeps its connection open) would otherwise hold the
/// blocking thread that writes the archive forever. A gone or stalled
/// receiver is an error that stops the archive.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
    runtime: tokio::runtime::Handle,
    stall: Duration,
}

/// Set when the archive failed: the body must end with an error, never look
/// complete (its channel may be too full to carry one).
#[derive(Clone, Default)]
pub struct Failed(Arc<AtomicBool>);

impl Failed {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl ChannelWriter {
    /// Must be made on the runtime the receiver is polled from.
    pub fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>, stall: Duration) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            runtime: tokio::runtime::Handle::current(),
            stall,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let sent = self
            .runtime
            .block_on(tokio::time::timeout(self.stall, self.tx.send(Ok(chunk))));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {:?}", self.stall),
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::os::unix::fs::symlink;

    #[test]
    fn archives_files_and_folders_but_no_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        std::fs::create_dir_all(p.join("out/sub")).unwrap();
        std::fs::write(p.join("out/a.txt"), "hello").unwrap();
        std::fs::write(p.join("out/sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
        symlink("/etc/passwd", p.join("out/leak")).unwrap();
        symlink("a.txt", p.join("out/alias")).unwrap();
        let dir = Dir::open_ambient_dir(p, ambient_authority()).unwrap();
        let bytes = write_tar_gz(&dir, Path::new("out"), "out", Vec::new()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            seen.push((path, content));
        }
        let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["out/", "out/a.txt", "out/sub", "out/sub/b.bin"]);
        assert_eq!(seen[1].1, b"hello");
        assert_eq!(seen[3].1, [0u8, 1, 2, 255]);
    }

    #[test]
    fn short_reads_are_padded() {
        let mut r = Exactly {
            inner: &b"ab"[..],
            remaining: 4,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab\0\0");
    }
}
