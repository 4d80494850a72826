//! CodeBuild in memory: build ids `project:uuid`, StartBuild's idempotency token (the same
//! token within five minutes is the same build; later, a new one), StopBuild, the statuses
//! and exported variables BatchGetBuilds reports. The builds themselves are played by the
//! caller (the simulation), which finishes them with [`MemoryBuilds::finish`].

use super::chaos::Chaos;
use archgate::domain::{BuildStatus, Millis};
use archgate::error::AdapterError;
use archgate::operation::{
    CODEBUILD_BATCH_GET_BUILDS, CODEBUILD_START_BUILD, CODEBUILD_STOP_BUILD,
};
use archgate::ports::{BuildDetails, BuildRequest, Builds, Clock};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How long CodeBuild honours an idempotency token.
/// The image every in-memory build runs on.
pub const MEMORY_BUILD_IMAGE: &str = "aws/codebuild/amazonlinux2-x86_64-standard:5.0";

pub const TOKEN_WINDOW_MS: Millis = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecordInMemory {
    pub id: String,
    pub request: BuildRequest,
    pub status: BuildStatus,
    pub started_at: Millis,
    pub stop_requested: bool,
    pub exported: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    builds: BTreeMap<String, BuildRecordInMemory>,
    /// Build ids in the order they were started.
    order: Vec<String>,
    next: u64,
    /// Every StartBuild that reached the service, with its token.
    start_calls: Vec<String>,
    /// StopBuild only asks: the build ends when its runner notices (the caller finishes it,
    /// STOPPED, or SUCCEEDED when it was already past its push), as CodeBuild's do.
    late_stops: bool,
}

#[derive(Clone)]
pub struct MemoryBuilds<C> {
    state: Arc<Mutex<State>>,
    chaos: Chaos,
    clock: C,
}

impl<C: Clock> MemoryBuilds<C> {
    pub fn new(chaos: Chaos, clock: C) -> Self {
        MemoryBuilds {
            state: Arc::default(),
            chaos,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every build, started or finished.
    pub fn all(&self) -> Vec<BuildRecordInMemory> {
        self.lock().builds.values().cloned().collect()
    }

    /// The builds started after the first `seen`, in the order they were started.
    pub fn started_since(&self, seen: usize) -> Vec<BuildRecordInMemory> {
        let state = self.lock();
        state
            .order
            .iter()
            .skip(seen)
            .filter_map(|id| state.builds.get(id).cloned())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<BuildRecordInMemory> {
        self.lock().builds.get(id).cloned()
    }

    /// The build ends with `status` (unless it already ended), exporting `exported`.
    pub fn finish(&self, id: &str, status: BuildStatus, exported: Vec<(String, String)>) -> bool {
        let mut state = self.lock();
        match state.builds.get_mut(id) {
            Some(build) if !build.status.is_final() => {
                build.status = status;
                build.exported = exported;
                true
            }
            _ => false,
        }
    }

    /// Whether StopBuild ends a build at once (the default) or only asks it to stop.
    pub fn set_late_stops(&self, late: bool) {
        self.lock().late_stops = late;
    }

    pub fn start_calls(&self) -> Vec<String> {
        self.lock().start_calls.clone()
    }
}

impl<C: Clock> Builds for MemoryBuilds<C> {
    async fn start(&self, request: &BuildRequest) -> Result<String, AdapterError> {
        let fault = self.chaos.enter(CODEBUILD_START_BUILD).await?;
        let now = self.clock.now_millis();
        let id = {
            let mut state = self.lock();
            state.start_calls.push(request.idempotency_token.clone());
            let repeat = state.builds.values().find(|b| {
                b.request.idempotency_token == request.idempotency_token
                    && now - b.started_at < TOKEN_WINDOW_MS
            });
            match repeat {
                Some(build) if build.request != *request => {
                    return Err(AdapterError::Rejected {
                        service: "CodeBuild",
                        operation: "StartBuild",
                        code: "InvalidInputException".to_owned(),
                        source: "idempotency token reused with other parameters".into(),
                    })
                }
                Some(build) => build.id.clone(),
                None => {
                    state.next += 1;
                    let id = format!(
                        "{}:{:08x}-0000-4000-8000-{:012x}",
                        request.project, state.next, state.next
                    );
                    state.order.push(id.clone());
                    state.builds.insert(
                        id.clone(),
                        BuildRecordInMemory {
                            id: id.clone(),
                            request: request.clone(),
                            status: BuildStatus::InProgress,
                            started_at: now,
                            stop_requested: false,
                            exported: Vec::new(),
                        },
                    );
                    id
                }
            }
        };
        self.chaos.leave(fault, CODEBUILD_START_BUILD, id).await
    }

    async fn stop(&self, build_id: &str) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(CODEBUILD_STOP_BUILD).await?;
        {
            let mut state = self.lock();
            let late_stops = state.late_stops;
            let Some(build) = state.builds.get_mut(build_id) else {
                return Err(AdapterError::Rejected {
                    service: "CodeBuild",
                    operation: "StopBuild",
                    code: "ResourceNotFoundException".to_owned(),
                    source: format!("no build {build_id}").into(),
                });
            };
            build.stop_requested = true;
            if !build.status.is_final() && !late_stops {
                build.status = BuildStatus::Stopped;
            }
        }
        self.chaos.leave(fault, CODEBUILD_STOP_BUILD, ()).await
    }

    async fn details(&self, build_id: &str) -> Result<Option<BuildDetails>, AdapterError> {
        let fault = self.chaos.enter(CODEBUILD_BATCH_GET_BUILDS).await?;
        let details = self.lock().builds.get(build_id).map(|b| BuildDetails {
            build_id: b.id.clone(),
            project: b.request.project.clone(),
            status: Some(b.status),
            environment: b.request.environment.clone(),
            exported: b.exported.clone(),
            image: Some(MEMORY_BUILD_IMAGE.to_owned()),
        });
        self.chaos
            .leave(fault, CODEBUILD_BATCH_GET_BUILDS, details)
            .await
    }
}
