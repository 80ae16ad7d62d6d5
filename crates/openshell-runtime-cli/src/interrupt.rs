//! SIGINT and SIGTERM while `doctor` runs: caught, so that the probe in flight is removed before
//! the process exits with the shell's code for the signal (130, 143).

use crate::Fail;

/// A signal that asks us to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interrupt {
    /// Its name, for the message.
    pub(crate) name: &'static str,
    /// The exit code a shell reports for it: 128 + its number.
    pub(crate) code: u8,
}

/// The stop signals, caught from creation on (so the default action, dying on the spot, no
/// longer applies).
pub(crate) struct Interrupts {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Interrupts {
    /// Starts catching SIGINT and SIGTERM (Ctrl-C elsewhere). Needs the async runtime.
    pub(crate) fn catch() -> Result<Interrupts, Fail> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let failed = |e: std::io::Error| Fail {
                code: 1,
                message: format!("cannot catch SIGINT and SIGTERM: {e}"),
            };
            Ok(Interrupts {
                int: signal(SignalKind::interrupt()).map_err(failed)?,
                term: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Interrupts {})
    }

    /// The next stop signal.
    pub(crate) async fn next(&mut self) -> Interrupt {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => Interrupt { name: "SIGINT", code: 130 },
                _ = self.term.recv() => Interrupt { name: "SIGTERM", code: 143 },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Interrupt {
                name: "Ctrl-C",
                code: 130,
            }
        }
    }
}
