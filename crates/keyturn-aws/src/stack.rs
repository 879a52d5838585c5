//! A thread with a deep stack for calls whose types are too large for an ordinary one.
//!
//! Security Hub's finding type holds every resource's details inline (a `Resource` is 31 KB), and
//! the SDK's GetFindings deserializer and builders move such values by the dozen: a debug build
//! overflowed the main thread's 8 MiB stack reading a handful of findings, and Lambda's and tokio's
//! threads are smaller still. Those calls run here instead, on one thread started on first use
//! with [`STACK`] of stack (address space: only the pages touched count as memory) and its own
//! single-threaded runtime, which lives as long as the process, so the client's pooled connections
//! stay valid between calls.

use std::future::Future;
use std::pin::Pin;

use keyturn_core::ports::{ApiError, ApiResult};
use tokio::sync::{mpsc, oneshot};

/// The worker thread's stack.
pub const STACK: usize = 256 << 20;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A deep-stacked thread that runs futures to completion.
#[derive(Debug, Clone)]
pub struct Deep {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Deep {
    /// Starts the thread and its runtime.
    pub fn start(name: &str) -> std::io::Result<Self> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(STACK)
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the thread and waits for its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = ApiResult<T>> + Send + 'static,
    ) -> ApiResult<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::pin(async move {
            // The caller may have gone (cancelled): nothing to tell it.
            let _ = done.send(work.await);
        });
        let stopped = || ApiError::Unavailable("the Security Hub worker thread stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_deep_thread_and_its_result_comes_back() {
        let deep = Deep::start("keyturn-test-deep").expect("a thread");
        let name = deep
            .run(async { Ok(std::thread::current().name().map(str::to_string)) })
            .await
            .expect("ran");
        assert_eq!(name.as_deref(), Some("keyturn-test-deep"));
        // A frame far larger than tokio's 2 MiB threads allow.
        let big = deep
            .run(async {
                let buffer = std::hint::black_box([1u8; 16 << 20]);
                Ok(buffer.iter().map(|b| *b as usize).sum::<usize>())
            })
            .await
            .expect("ran");
        assert_eq!(big, 16 << 20);
        let failed: ApiResult<()> = deep
            .run(async { Err(ApiError::NotFound("x".into())) })
            .await;
        assert!(matches!(failed, Err(ApiError::NotFound(_))));
    }
}
