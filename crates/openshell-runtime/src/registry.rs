//! The detector registry: an ordered list of detectors, the first match wins.
//!
//! Specific runtimes come before generic ones (a remote endpoint before anything local, Podman
//! machine before rootless Podman, the Docker VMs before native Docker), so the generic fallbacks
//! only see engines nothing more specific claimed. A detector says "mine" with evidence, "not
//! mine" with a reason, or "failed" when it saw its signals but could not conclude; a failure
//! stops the search, because a more generic detector further down would only be guessing.

use std::fmt;

use serde::Serialize;

use crate::evidence::Evidence;
use crate::facts::Facts;
use crate::runtime::{Runtime, RuntimeId};

/// What one detector concluded.
#[derive(Debug, Clone)]
pub enum Detection {
    /// The engine is this runtime.
    Match {
        /// The runtime, owning the facts its route needs.
        runtime: Runtime,
        /// The facts that matched.
        evidence: Vec<Evidence>,
    },
    /// Not this runtime, and why.
    NotMine(String),
    /// Signals of this runtime were seen, but not enough to decide; the search stops.
    Failed(String),
}

/// Something that recognises one runtime from facts.
pub trait Detector: Send + Sync {
    /// The detector's name (for built-ins, the runtime id).
    fn name(&self) -> &str;
    /// Looks at the facts.
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

/// What one consulted detector said, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consulted {
    /// Detector name.
    pub detector: String,
    /// Its outcome.
    pub outcome: Outcome,
}

/// A detector's outcome, without the runtime value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// It matched.
    Matched,
    /// Not its runtime.
    NotMine(String),
    /// It saw its signals but could not decide.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Matched => f.write_str("matched"),
            Outcome::NotMine(r) => write!(f, "not mine ({r})"),
            Outcome::Failed(r) => write!(f, "failed ({r})"),
        }
    }
}

/// The winning detector.
#[derive(Debug, Clone)]
pub struct Winner {
    /// The runtime.
    pub runtime: Runtime,
    /// Which detector matched.
    pub detector: String,
    /// Why.
    pub evidence: Vec<Evidence>,
}

/// The registry's answer: the winner, if any, and what every consulted detector said.
#[derive(Debug, Clone)]
pub struct DetectionReport {
    /// The runtime that matched.
    pub winner: Option<Winner>,
    /// Every detector consulted, in order, up to and including the winner or the failure.
    pub consulted: Vec<Consulted>,
}

/// The ordered detectors.
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

/// The built-in order. Adding a runtime adds one line here.
const BUILTIN_ORDER: [RuntimeId; 11] = [
    RuntimeId::RemoteDocker,
    RuntimeId::PodmanMachine,
    RuntimeId::PodmanRootless,
    RuntimeId::Podman,
    RuntimeId::DockerDesktop,
    RuntimeId::OrbStack,
    RuntimeId::RancherDesktop,
    RuntimeId::Colima,
    RuntimeId::Lima,
    RuntimeId::RootlessDocker,
    RuntimeId::NativeDocker,
];

impl Registry {
    /// All built-in detectors, in order.
    pub fn builtin() -> Registry {
        Registry {
            detectors: BUILTIN_ORDER
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
