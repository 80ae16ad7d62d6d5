//! Engines behind `ssh://`: every connection goes through the system `ssh` client, as the
//! docker and podman CLIs use it, so the user's keys, agent, `~/.ssh/config` and `known_hosts`
//! apply.
//!
//! One session per target (a `Target` and its clones): a master ssh
//! (`ControlMaster=yes`, `ControlPersist=no`) started on the first connection, under a
//! watchdog that ends it when this process ends, however it ends (SIGKILL included), and
//! again when the last clone of the target is dropped. Authentication and the key exchange
//! happen once per session, not per connection.
//!
//! - Without a socket path (`ssh://user@host`, the docker CLI's form), each connection is an
//!   ssh client riding the master (a multiplexed session, at most 8 at once,
//!   below sshd's default `MaxSessions`; past them a connection gets an ssh of its own) that
//!   runs `docker system dial-stdio` on the remote side, which relays to whatever engine the
//!   remote docker CLI is configured for; HTTP goes over the client's stdin and stdout. The
//!   HTTP pool keeps a connection for the next request, so one such client usually serves a
//!   whole run.
//! - With a socket path (`ssh://user@host:22/run/podman/podman.sock`, Podman's connections),
//!   the master forwards a Unix socket in its private directory here to that remote socket
//!   (`-L local:remote`, streamlocal forwarding), and each connection is a connection to it.
//!   `ssh -W` would be simpler, but Debian 12's OpenSSH 9.2 takes only `host:port` there, and
//!   Podman 4.3 has no `podman system dial-stdio`.
//!
//! Host keys are always checked (`StrictHostKeyChecking=yes`, `BatchMode=yes`: no prompt, no
//! key learnt on first use, no password), whatever the user's configuration says, and no ssh
//! of ours shares a connection the user's configuration sets up (`ControlPath` is ours or
//! `none`). What ssh printed on stderr becomes the error when it closes the connection, or
//! stops taking the request, before the engine answered. A killed run's session directory,
//! and any ssh still using it, are removed by the next session started.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

    /// The ssh command for `host`, sharing no connection of the user's own (`ControlPath`
    /// `none`: a `ControlMaster auto` with `ControlPersist` in the user's configuration would
    /// leave a master running after we exit).
    fn direct_command(&self, port: Option<u16>) -> Command {
        let mut c = self.command(port);
        c.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"]);
        c
    }

    /// `docker system dial-stdio` on `host`, through `session`'s master when it has a
    /// multiplexing slot free, else on a connection of its own.
    fn dial_stdio(
        &self,
        host: &str,
        port: Option<u16>,
        session: Option<&Session>,
    ) -> io::Result<SshStream> {
        let (mut c, permit) = match session.and_then(|s| Some((s, s.permit()?))) {
            Some((s, permit)) => {
                let mut c = self.command(port);
                c.args(["-o", "ControlMaster=no", "-o"])
                    .arg(format!("ControlPath={}", s.control.display()));
                (c, Some(permit))
            }
            None => (self.direct_command(port), None),
        };
        // The destination after `--`, so that no host name is read as an option.
        c.arg("--")
            .arg(host)
            .args(["docker", "system", "dial-stdio"]);
        let mut stream = SshStream::spawn(c)?;
        stream.permit = permit;
        Ok(stream)
    }

    /// Runs `true` on `host` once through the master at `control`, in the background, for
    /// sshd to turn off Nagle's algorithm on the session's connection: sshd sets `TCP_NODELAY`
    /// when it runs a command of a session (OpenSSH's `ssh_packet_set_interactive`, called from
    /// `do_exec_pty` and `do_exec_no_pty`), and a master with only a forwarded socket runs none.
    /// Without it, two writes of the engine in a row (the relay's frames, as Podman forwards
    /// each write of its stdout) waited for our delayed ACK: 40 ms on every callback through a
    /// relay over `ssh://` to Podman. The command ends at once; a remote side that runs another
    /// (a forced command) gets no input and is ended after [`NUDGE_BOUND`] if it has not.
    fn nudge(&self, host: &str, port: Option<u16>, control: &Path) {
        let mut c = self.command(port);
        c.args(["-o", "ControlMaster=no", "-o"])
            .arg(format!("ControlPath={}", control.display()))
            .arg("--")
            .arg(host)
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match c.spawn() {
            Ok(mut child) => {
                tokio::spawn(async move {
                    if tokio::time::timeout(NUDGE_BOUND, child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                });
            }
            Err(e) => tracing::debug!(error = %e, "ssh session nudge not started"),
        }
    }

    /// The master ssh of a session, run under a watchdog tied to our life: `sh` starts ssh in
    /// the background and waits for it, while a second job reads the watchdog's stdin, a pipe
    /// only we hold, and kills ssh when it ends. Our end closes however we end, SIGKILL
    /// included (`kill_on_drop` runs on no signal), so ssh never outlives us by more than a
    /// moment; and that needs no code in the child between fork and exec. ssh's own exit
    /// status and stderr are the watchdog's. The master holds the control socket
    /// (`ControlPersist=no`: it ends with the watchdog, never lingers) and, with `forward`,
    /// forwards a local Unix socket to the remote one.
    fn master_command(
        &self,
        host: &str,
        port: Option<u16>,
        control: &Path,
        forward: Option<(&Path, &str)>,
    ) -> Command {
        let ssh = self.command(port);
        let std = ssh.as_std();
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(WATCHDOG)
            .arg("openshell-ssh-watchdog")
            .arg(std.get_program())
            .args(std.get_args())
            .args([
                "-N",
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=no",
                "-o",
            ])
            .arg(format!("ControlPath={}", control.display()));
        if let Some((local, remote)) = forward {
            c.args(["-o", "ExitOnForwardFailure=yes", "-L"])
                .arg(format!("{}:{remote}", local.display()));
        }
        c.arg("--")
            .arg(host)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }
}

/// How long the command that turns off Nagle's algorithm on a session may run
/// ([`SshSettings::nudge`]).
const NUDGE_BOUND: Duration = Duration::from_secs(10);

/// The multiplexed sessions one master carries at most: OpenSSH's sshd allows 10 sessions per
/// connection by default (`MaxSessions`); connections past these get an ssh of their own.
const MUX_SESSIONS: usize = 8;

/// The one ssh session a target's connections share, started on the first connection and
/// again if its master ended; it ends when the last clone of the target is dropped.
#[derive(Debug, Default)]
pub(crate) struct SessionSlot {
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl SessionSlot {
    /// A connection to the engine at `host` (and `path`, the remote socket, when given) through
    /// this slot's session, which is started first when there is none or its master ended.
    pub(crate) async fn connect(
        &self,
        settings: &SshSettings,
        host: &str,
        port: Option<u16>,
        path: Option<&str>,
    ) -> io::Result<SshStream> {
        let session = {
            let mut slot = self.session.lock().await;
            let alive = match slot.as_ref() {
                Some(s) => s.alive()?,
                None => false,
            };
            if !alive {
                *slot = None;
                *slot = Some(Arc::new(Session::start(settings, host, port, path).await?));
            }
            slot.as_ref().map(Arc::clone)
        };
        let Some(session) = session else {
            return Err(io::Error::other("no ssh session"));
        };
        match &session.forward {
            Some(local) => {
                let stream = UnixStream::connect(local).await?;
                Ok(SshStream {
                    io: Io::Forwarded(stream),
                    child: None,
                    stderr: None,
                    read_any: false,
                    permit: None,
                    _session: Some(Arc::clone(&session)),
                })
            }
            None => settings.dial_stdio(host, port, Some(&session)),
        }
    }
}

/// A master ssh process with its control socket (and forwarded socket) in a private directory.
#[derive(Debug)]
pub(crate) struct Session {
    child: std::sync::Mutex<Child>,
    control: PathBuf,
    forward: Option<PathBuf>,
    mux: Arc<Semaphore>,
    _dir: tempfile::TempDir,
}

impl Session {
    async fn start(
        settings: &SshSettings,
        host: &str,
        port: Option<u16>,
        path: Option<&str>,
    ) -> io::Result<Session> {
        sweep_stale_forwards();
        let dir = tempfile::Builder::new()
            .prefix(&forward_dir_prefix())
            .tempdir_in(session_parent())?;
        let control = dir.path().join("control");
        let local = dir.path().join("engine.sock");
        let forward = path.map(|remote| (local.as_path(), remote));
        let mut child = settings
            .master_command(host, port, &control, forward)
            .spawn()?;
        let stderr = child.stderr.take().map(collect_stderr);
        // ssh creates the control socket once authenticated, and the forwarded one once the
        // forward is set up; the caller bounds the wait.
        loop {
            let ready = control.exists() && (path.is_none() || local.exists());
            if ready {
                // The task keeps draining ssh's stderr, so ssh never blocks on a full pipe.
                drop(stderr);
                if path.is_some() {
                    settings.nudge(host, port, &control);
                }
                return Ok(Session {
                    child: std::sync::Mutex::new(child),
                    control,
                    forward: path.map(|_| local),
                    mux: Arc::new(Semaphore::new(MUX_SESSIONS)),
                    _dir: dir,
                });
            }
            if let Some(status) = child.try_wait()? {
                let said = match stderr {
                    Some(h) => h.await.unwrap_or_default(),
                    None => String::new(),
                };
                return Err(failed(&format!("ssh exited ({status})"), &said));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the master still runs.
    fn alive(&self) -> io::Result<bool> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(child.try_wait()?.is_none())
    }

    /// A multiplexing slot, if one is free.
    fn permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.mux).try_acquire_owned().ok()
    }
}

/// The watchdog `sh -c` runs with ssh's program and arguments as `$@`: ssh in the background
/// with stdin from /dev/null; a job that waits for EOF on the watchdog's stdin (holding no
/// stderr, so ssh's stderr ends when ssh does) and then ends ssh; the watchdog exits with
/// ssh's status. (An asynchronous job's stdin is /dev/null in a shell without job control, so
/// the watchdog's stdin is kept on descriptor 3 for the job that waits on it.)
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & ssh=$!
( exec 2>/dev/null; cat <&3 >/dev/null; kill "$ssh" ) &
guard=$!
wait "$ssh"; status=$?
kill "$guard" 2>/dev/null
exit "$status""#;

/// Where session directories go: the temporary directory, unless its path is so long that
/// the sockets in it would pass the limit of a socket's path (104 bytes on macOS, whose
/// `TMPDIR` is about 50; ssh binds the control socket under a name 17 bytes longer), then
/// `/tmp`.
fn session_parent() -> PathBuf {
    let temp = std::env::temp_dir();
    if temp.as_os_str().len() <= 32 {
        temp
    } else {
        PathBuf::from("/tmp")
    }
}

/// Our pid namespace's inode, read from `/proc/self/ns/pid` (`pid:[4026531836]`).
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            let inode = l.strip_prefix("pid:[")?.strip_suffix(']')?.to_string();
            inode.chars().all(|c| c.is_ascii_digit()).then_some(inode)
        })
        .unwrap_or_else(|| "0".to_string())
}

/// The private directories of forwarded sockets are named after their owner:
/// `openshell-ssh-<pid namespace>-<pid>-<random>`.
fn forward_dir_prefix() -> String {
    format!("openshell-ssh-{}-{}-", pid_namespace(), std::process::id())
}

/// Whether `name` is the private directory of a forward whose owner, in our pid namespace, is
/// gone.
fn forward_dir_stale(name: &str, namespace: &str, alive: &dyn Fn(u32) -> bool) -> bool {
    let Some(rest) = name.strip_prefix("openshell-ssh-") else {
        return false;
    };
    let mut parts = rest.splitn(3, '-');
    let (Some(ns), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ns == namespace && pid.parse::<u32>().is_ok_and(|pid| !alive(pid))
}

/// Removes what a killed run's forwards left: the ssh processes still forwarding into a
/// private directory whose owner is gone (a run from before the watchdog, or a watchdog
/// killed with it), then those directories. Best effort: what cannot be read or removed stays.
fn sweep_stale_forwards() {
    let namespace = pid_namespace();
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let Ok(entries) = std::fs::read_dir(session_parent()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !forward_dir_stale(&name.to_string_lossy(), &namespace, &alive) {
            continue;
        }
        let dir = entry.path();
        kill_forwarders_of(&dir);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::debug!(error = %e, dir = %dir.display(), "stale ssh forward directory not removed");
        }
    }
}

/// Ends the processes whose command line names a socket inside `dir` (a master's control
/// socket, a forward's local socket).
fn kill_forwarders_of(dir: &Path) {
    let needle = format!("{}/", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            tracing::info!(pid, dir = %dir.display(), "ending an ssh forward a killed run left");
            let _ = std::process::Command::new("kill")
                .arg("--")
                .arg(pid)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
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

/// One engine connection through ssh: an ssh process of its own (`dial-stdio`, riding the
/// session's master when it has a slot free), or a connection to the session's forwarded
/// socket.
#[derive(Debug)]
pub struct SshStream {
    io: Io,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    read_any: bool,
    permit: Option<OwnedSemaphorePermit>,
    _session: Option<Arc<Session>>,
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
            child: Some(child),
            stderr,
            read_any: false,
            permit: None,
            _session: None,
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
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
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

    /// A forwarding ssh ends when we do, however we end: a SIGKILLed gateway ran no drop, and
    /// left its `ssh -N -L` running for ever. What the kernel does at our death (closing our
    /// end of the pipes, killing nothing else) is done here by hand.
    #[tokio::test]
    async fn a_forwarding_ssh_ends_when_our_end_of_its_stdin_closes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pidfile = dir.path().join("pid");
        // A stand-in for ssh that forwards nothing and would run for 30 s.
        let program = dir.path().join("ssh");
        crate::testing::write_script(
            &program,
            &format!(
                "#!/bin/sh
echo $$ > {}
exec sleep 30
",
                pidfile.display()
            ),
        );
        let settings = SshSettings {
            program: Some(program),
            ..Default::default()
        };
        let local = dir.path().join("engine.sock");
        let control = dir.path().join("control");
        let mut c = settings.master_command(
            "h",
            None,
            &control,
            Some((&local, "/run/podman/podman.sock")),
        );
        c.kill_on_drop(false);
        let mut child = c.spawn().unwrap_or_else(|e| panic!("{e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                break pid;
            }
            assert!(tokio::time::Instant::now() < deadline, "ssh never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let alive = || Path::new(&format!("/proc/{pid}")).exists();
        assert!(alive());
        // Our death, as the forward sees it: our end of the pipe closes.
        drop(child.stdin.take());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let survived = alive();
        if survived {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let _ = child.kill().await;
        assert!(!survived, "the forwarding ssh outlived its gateway");
    }

    #[test]
    fn only_a_gone_owners_forward_directory_is_stale() {
        let alive = |pid: u32| pid == 7;
        assert!(forward_dir_stale(
            "openshell-ssh-4026-9-abc",
            "4026",
            &alive
        ));
        assert!(!forward_dir_stale(
            "openshell-ssh-4026-7-abc",
            "4026",
            &alive
        ));
        // Another pid namespace's run: its pids mean nothing here.
        assert!(!forward_dir_stale(
            "openshell-ssh-1111-9-abc",
            "4026",
            &alive
        ));
        // The old name, and anything else.
        assert!(!forward_dir_stale("openshell-ssh-abc", "4026", &alive));
        assert!(!forward_dir_stale("other-4026-9-abc", "4026", &alive));
    }

    /// ssh that gives up at once (a host-key mismatch) may be gone before the request is
    /// written: the write fails, and the error must still be what ssh said, not a broken pipe.
    #[tokio::test]
    async fn a_write_after_ssh_gave_up_reports_what_ssh_said() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A stand-in for ssh that never reads its stdin, so a request larger than the pipe
        // cannot be taken whole.
        let program = dir.path().join("ssh");
        crate::testing::write_script(
            &program,
            "#!/bin/sh\necho 'Host key verification failed.' >&2\nexit 255\n",
        );
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
