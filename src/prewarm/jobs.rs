//! Prewarm jobs the server runs (`POST /api/v1/prewarm`) and their progress, in memory.
//! Finished jobs are kept for an hour, and at most `MAX_FINISHED` of them, so a busy CI
//! cannot grow the table without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Row;

/// Finished jobs kept, at most.
const MAX_FINISHED: usize = 200;
/// How long a finished job's progress stays readable.
const KEEP_FINISHED: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    /// Every requirement has a wheel.
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct PrewarmProgress {
    pub state: JobState,
    pub lines: Vec<String>,
    pub rows: Vec<Row>,
    pub error: Option<String>,
}

struct Job {
    progress: PrewarmProgress,
    finished_at: Option<Instant>,
}

#[derive(Default)]
pub struct PrewarmJobs(Mutex<HashMap<String, Job>>);

impl PrewarmJobs {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a running job.
    pub fn start(&self, id: &str) {
        let mut jobs = self.jobs();
        prune(&mut jobs);
        jobs.insert(
            id.to_string(),
            Job {
                progress: PrewarmProgress {
                    state: JobState::Running,
                    lines: Vec::new(),
                    rows: Vec::new(),
                    error: None,
                },
                finished_at: None,
            },
        );
    }

    pub fn line(&self, id: &str, line: String) {
        if let Some(job) = self.jobs().get_mut(id) {
            job.progress.lines.push(line);
        }
    }

    /// Records how a job ended: its rows, or the error that stopped it.
    pub fn finish(&self, id: &str, result: Result<Vec<Row>, String>) {
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        job.finished_at = Some(Instant::now());
        match result {
            Ok(rows) => {
                job.progress.state = if rows.iter().any(|row| row.source == "failed") {
                    JobState::Failed
                } else {
                    JobState::Succeeded
                };
                job.progress.rows = rows;
            }
            Err(error) => {
                job.progress.state = JobState::Failed;
                job.progress.error = Some(error);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<PrewarmProgress> {
        self.jobs().get(id).map(|job| job.progress.clone())
    }
}

/// Drops finished jobs older than `KEEP_FINISHED`, then the oldest beyond `MAX_FINISHED`.
fn prune(jobs: &mut HashMap<String, Job>) {
    jobs.retain(|_, job| {
        job.finished_at
            .is_none_or(|finished| finished.elapsed() < KEEP_FINISHED)
    });
    let mut finished: Vec<(Instant, String)> = jobs
        .iter()
        .filter_map(|(id, job)| job.finished_at.map(|at| (at, id.clone())))
        .collect();
    if finished.len() > MAX_FINISHED {
        finished.sort();
        for (_, id) in &finished[..finished.len() - MAX_FINISHED] {
            jobs.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_bounded_and_running_ones_kept() {
        let jobs = PrewarmJobs::default();
        jobs.start("running");
        for number in 0..MAX_FINISHED + 50 {
            let id = format!("job-{number}");
            jobs.start(&id);
            jobs.finish(&id, Ok(Vec::new()));
        }
        jobs.start("one-more");
        let held = jobs.jobs().len();
        assert!(held <= MAX_FINISHED + 2, "{held} jobs held");
        assert_eq!(jobs.get("running").unwrap().state, JobState::Running);
        assert!(
            jobs.get("job-0").is_none(),
            "the oldest finished job is dropped"
        );
        assert_eq!(
            jobs.get(&format!("job-{}", MAX_FINISHED + 49))
                .unwrap()
                .state,
            JobState::Succeeded
        );
    }
}
