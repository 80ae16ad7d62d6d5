//! The detector registry: an ordered list of detectors, the first match wins.
//!
//! Specific runtimes come before generic ones (a remote endpoint before anything local, Podman
//! machine before rootless Podman, the Docker VMs before native Docker), so the generic fallbacks
//! only see engines nothing more specific claimed. A detector says "mine" with evidence, "not
//! mine" with a reason, or "failed" when it saw its signals but could not conclude; a failure
//! stops the search, because a more generic detector further down would only be guessing.

use std::fmt;

use crate::evidence::Evidence;
use crate::facts::Facts;
pub use crate::report::{Consulted, Outcome};
pub use crate::runtime::Detection;
use crate::runtime::{Runtime, RuntimeId};

/// Something that recognises one runtime from facts.
pub trait Detector: Send + Sync {
    /// The detector's name (for built-ins, the runtime id).
    fn name(&self) -> &str;
    /// Looks at the facts: [`Detection::Match`] with evidence, [`Detection::NotMine`] to let the
    /// next detector look, or [`Detection::Failed`] to stop the search.
    fn detect(&self, facts: &Facts) -> Detection;
}

impl fmt::Debug for dyn Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Detector({})", self.name())
    }
}

/// A built-in runtime's detector.
#[derive(Debug, Clone, Copy)]
struct Builtin(RuntimeId);

impl Detector for Builtin {
    fn name(&self) -> &str {
        self.0.as_str()
    }

    fn detect(&self, facts: &Facts) -> Detection {
        (self.0.detector())(facts)
    }
}

/// The detector that matched, with what it matched.
#[derive(Debug, Clone)]
pub struct Winner {
    /// The runtime, owning the facts its route needs.
    pub runtime: Runtime,
    /// The matching detector's name.
    pub detector: String,
    /// The facts that identified the runtime, for people.
    pub evidence: Vec<Evidence>,
}

/// The registry's answer: the winner, if any, and what every consulted detector said.
#[derive(Debug, Clone)]
pub struct DetectionReport {
    /// The detector that matched; `None` when none did or one failed.
    pub winner: Option<Winner>,
    /// Every detector consulted, in order, up to and including the winner or the failure.
    pub consulted: Vec<Consulted>,
}

/// The ordered detectors: the first match wins, and a failure stops the search.
pub struct Registry {
    detectors: Vec<Box<dyn Detector>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// All built-in detectors, in the order of the runtime table (`runtimes!` in
    /// `runtime/mod.rs`), which is [`RuntimeId::ALL`]'s order.
    pub fn builtin() -> Registry {
        Registry {
            detectors: RuntimeId::ALL
                .into_iter()
                .map(|id| Box::new(Builtin(id)) as Box<dyn Detector>)
                .collect(),
        }
    }

    /// A registry with no detectors.
    pub fn empty() -> Registry {
        Registry {
            detectors: Vec::new(),
        }
    }

    /// Adds a detector consulted before all others.
    pub fn register_first(&mut self, detector: impl Detector + 'static) -> &mut Self {
        self.detectors.insert(0, Box::new(detector));
        self
    }

    /// Adds a detector consulted just before the one named `before` (at the end if absent).
    pub fn register_before(
        &mut self,
        before: &str,
        detector: impl Detector + 'static,
    ) -> &mut Self {
        let at = self
            .detectors
            .iter()
            .position(|d| d.name() == before)
            .unwrap_or(self.detectors.len());
        self.detectors.insert(at, Box::new(detector));
        self
    }

    /// Adds a detector consulted after all others.
    pub fn register_last(&mut self, detector: impl Detector + 'static) -> &mut Self {
        self.detectors.push(Box::new(detector));
        self
    }

    /// Detector names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.detectors.iter().map(|d| d.name()).collect()
    }

    /// Runs the detectors in order until one matches or fails.
    pub fn detect(&self, facts: &Facts) -> DetectionReport {
        let mut consulted = Vec::new();
        for d in &self.detectors {
            let name = d.name().to_string();
            match d.detect(facts) {
                Detection::Match { runtime, evidence } => {
                    consulted.push(Consulted {
                        detector: name.clone(),
                        outcome: Outcome::Matched,
                    });
                    return DetectionReport {
                        winner: Some(Winner {
                            runtime,
                            detector: name,
                            evidence,
                        }),
                        consulted,
                    };
                }
                Detection::NotMine(reason) => consulted.push(Consulted {
                    detector: name,
                    outcome: Outcome::NotMine(reason),
                }),
                Detection::Failed(reason) => {
                    consulted.push(Consulted {
                        detector: name,
                        outcome: Outcome::Failed(reason),
                    });
                    break;
                }
            }
        }
        DetectionReport {
            winner: None,
            consulted,
        }
    }
}
