//! Engines behind `ssh://`: every connection is the system `ssh` client, as the docker and
//! podman CLIs use it, so the user's keys, agent, `~/.ssh/config` and `known_hosts` apply.
//!
//! - Without a socket path (`ssh://user@host`, the docker CLI's form), the remote side runs
//!   `docker system dial-stdio`, which relays to whatever engine the remote docker CLI is
//!   configured for, and HTTP goes over the ssh client's stdin and stdout.
//! - With a socket path (`ssh://user@host:22/run/podman/podman.sock`, Podman's connections),
//!   OpenSSH forwards a Unix socket in a private directory here to that remote socket
//!   (`-L local:remote`, streamlocal forwarding), and the connection goes through it. `ssh -W`
//!   would be simpler, but Debian 12's OpenSSH 9.2 takes only `host:port` there, and Podman 4.3
//!   has no `podman system dial-stdio`.
//!
//! Host keys are always checked (`StrictHostKeyChecking=yes`, `BatchMode=yes`: no prompt, no
//! key learnt on first use, no password), whatever the user's configuration says. Each
//! connection is one ssh process, killed when the connection is dropped; what ssh printed on
//! stderr becomes the error when it closes the connection, or stops taking the request, before
//! the engine answered.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The variable naming an ssh client configuration file (`ssh -F`) used instead of the user's
/// own, for example to name an identity and a known_hosts file for one engine.
pub const SSH_CONFIG_ENV: &str = "OPENSHELL_SSH_CONFIG";

/// The most of ssh's stderr kept for an error message.
const STDERR_CAP: usize = 2048;

/// How to run the ssh client for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// The remote user (`ssh -l`), from the endpoint's `user@`; ssh's default otherwise.
    pub user: Option<String>,
    /// An identity file (`ssh -i`, with `IdentitiesOnly`), from a Podman connection.
    pub identity: Option<PathBuf>,
    /// A client configuration file (`ssh -F`), from [`SSH_CONFIG_ENV`].
    pub config: Option<PathBuf>,
    /// The ssh program; `ssh` on the `PATH` when unset.
    pub program: Option<PathBuf>,
}

/// The user part of an `ssh://user[:password]@host` endpoint, when it is a plain user name (a
/// password is never used: ssh takes none on its command line).
pub fn user_of(raw: &str) -> Option<String> {
    let rest = raw.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    let plain = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    plain.then(|| user.to_string())
}

impl SshSettings {
    /// The settings for the endpoint written as `raw`, with the ssh client configuration file
    /// named in the environment ([`SSH_CONFIG_ENV`]), if any.
    pub fn for_endpoint(raw: &str, config: Option<&str>) -> SshSettings {
        SshSettings {
            user: user_of(raw),
            identity: None,
            config: config.map(PathBuf::from),
            program: None,
        }
    }

    fn command(&self, port: Option<u16>) -> Command {
        let mut c = Command::new(self.program.as_deref().unwrap_or(Path::new("ssh")));
        if let Some(config) = &self.config {
            c.arg("-F").arg(config);
        }
        // Options given on the command line win over every configuration file.
        c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]);
        if let Some(identity) = &self.identity {
            c.arg("-i").arg(identity).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(user) = &self.user {
            c.arg("-l").arg(user);
        }
        if let Some(port) = port {
            c.arg("-p").arg(port.to_string());
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Opens a connection to the engine at `host` (and `path`, the remote socket, when given).
    pub(crate) async fn connect(
        &self,
        host: &str,
        port: Option<u16>,
        path: Option<&str>,
    ) -> io::Result<SshStream> {
        match path {
            None => {
                let mut c = self.command(port);
                // The destination after `--`, so that no host name is read as an option.
                c.arg("--")
                    .arg(host)
                    .args(["docker", "system", "dial-stdio"]);
                SshStream::spawn(c)
            }
            Some(remote) => self.forward(host, port, remote).await,
        }
    }

    /// A Unix socket here forwarded to `remote` on the host, and a connection through it.
    async fn forward(&self, host: &str, port: Option<u16>, remote: &str) -> io::Result<SshStream> {
        let dir = tempfile::Builder::new()
            .prefix("openshell-ssh-")
            .tempdir()?;
        let local = dir.path().join("engine.sock");
        let mut c = self.command(port);
        c.args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("{}:{remote}", local.display()))
            .arg("--")
            .arg(host)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut child = c.spawn()?;
        let stderr = child.stderr.take().map(collect_stderr);
        // ssh creates the socket once the forward is set up; the caller bounds the wait.
        loop {
            if let Ok(stream) = UnixStream::connect(&local).await {
                return Ok(SshStream {
                    io: Io::Forwarded(stream),
                    child,
                    stderr,
                    read_any: false,
                    _dir: Some(dir),
                });
            }
            if let Some(status) = child.try_wait()? {
                let said = match stderr {
                    Some(h) => h.await.unwrap_or_default(),
                    None => String::new(),
                };
                return Err(failed(&format!("ssh exited ({status})"), &said));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn collect_stderr(mut stderr: tokio::process::ChildStderr) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 512];
        // Read to the end (so ssh never blocks on a full pipe) but keep only the start.
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let room = STDERR_CAP.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).trim().to_string()
    })
}

/// The ssh client failed before the engine answered, with what it printed on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}; ssh said: {said} (check the host key in known_hosts, the identity, and that the remote side has the engine's CLI or socket)")]
pub struct SshFailed {
    /// What happened.
    pub what: String,
    /// ssh's stderr, escaped and capped (`nothing on stderr` when it said nothing).
    pub said: String,
}

fn failed(what: &str, stderr: &str) -> io::Error {
    let said = if stderr.is_empty() {
        "nothing on stderr".to_string()
    } else {
        openshell_runtime::display_value(stderr)
    };
    io::Error::other(SshFailed {
        what: what.to_string(),
        said,
    })
}

#[derive(Debug)]
enum Io {
    Stdio(ChildStdin, ChildStdout),
    Forwarded(UnixStream),
}

/// One engine connection through one ssh process.
#[derive(Debug)]
pub struct SshStream {
    io: Io,
    child: Child,
    stderr: Option<JoinHandle<String>>,
    read_any: bool,
    _dir: Option<tempfile::TempDir>,
}

impl SshStream {
    fn spawn(mut c: Command) -> io::Result<SshStream> {
        let mut child = c.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("ssh started without its pipes"));
        };
        let stderr = child.stderr.take().map(collect_stderr);
        Ok(SshStream {
            io: Io::Stdio(stdin, stdout),
            child,
            stderr,
            read_any: false,
            _dir: None,
        })
    }

    /// The connection failed before the engine said a byte: ssh (or the remote command) gave
    /// up. Its stderr says why, and is complete once ssh has gone, which a closed pipe means.
    fn poll_failure(&mut self, cx: &mut Context<'_>, what: &str) -> Poll<io::Error> {
        let said = match self.stderr.as_mut() {
            Some(h) => match Pin::new(h).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(s) => s.unwrap_or_default(),
            },
            None => String::new(),
        };
        self.stderr = None;
        let _ = self.child.start_kill();
        Poll::Ready(failed(what, &said))
    }

    /// A write that failed before any answer is ssh's failure, not the engine's: report what
    /// ssh said. (ssh that exits at once, as on a host-key mismatch, can close its stdin before
    /// the request is written, so this races with the read side's report.)
    fn poll_written<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Err(e)) if !self.read_any && self.stderr.is_some() => self
                .poll_failure(cx, &format!("ssh stopped taking the request ({e})"))
                .map(Err),
            other => other,
        }
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Stdio(_, out) => Pin::new(out).poll_read(cx, buf),
            Io::Forwarded(s) => Pin::new(s).poll_read(cx, buf),
        };
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() == before && !this.read_any => this
                .poll_failure(cx, "ssh closed the connection before the engine answered")
                .map(Err),
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.read_any = true;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = match &mut this.io {
            Io::Stdio(input, _) => Pin::new(input).poll_write(cx, buf),
            Io::Forwarded(s) => Pin::new(s).poll_write(cx, buf),
        };
        this.poll_written(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = match &mut this.io {
            Io::Stdio(input, _) => Pin::new(input).poll_flush(cx),
            Io::Forwarded(s) => Pin::new(s).poll_flush(cx),
        };
        this.poll_written(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Stdio(input, _) => Pin::new(input).poll_shutdown(cx),
            Io::Forwarded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_plain_user_names_only() {
        assert_eq!(user_of("ssh://me@h:22/x").as_deref(), Some("me"));
        assert_eq!(user_of("ssh://me:secret@h").as_deref(), Some("me"));
        assert_eq!(user_of("ssh://h:22"), None);
        assert_eq!(user_of("ssh://-oProxyCommand=x@h"), None);
        assert_eq!(user_of("ssh://a b@h"), None);
    }

    /// ssh that gives up at once (a host-key mismatch) may be gone before the request is
    /// written: the write fails, and the error must still be what ssh said, not a broken pipe.
    #[tokio::test]
    async fn a_write_after_ssh_gave_up_reports_what_ssh_said() {
        use std::os::unix::fs::PermissionsExt;
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A stand-in for ssh that never reads its stdin, so a request larger than the pipe
        // cannot be taken whole.
        let program = dir.path().join("ssh");
        std::fs::write(
            &program,
            "#!/bin/sh\necho 'Host key verification failed.' >&2\nexit 255\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let settings = SshSettings {
            program: Some(program),
            ..Default::default()
        };
        let c = settings.command(None);
        let mut stream = SshStream::spawn(c).unwrap_or_else(|e| panic!("{e}"));
        let request = vec![b'x'; 1 << 20];
        let err = match stream.write_all(&request).await {
            Ok(()) => panic!("1 MiB went into a pipe nobody reads"),
            Err(e) => e,
        };
        let said = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<SshFailed>())
            .unwrap_or_else(|| panic!("not ssh's failure: {err:?}"));
        assert!(
            said.what.starts_with("ssh stopped taking the request"),
            "{said:?}"
        );
        assert_eq!(said.said, "Host key verification failed.");
    }
}
