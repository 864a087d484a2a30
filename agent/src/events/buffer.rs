//! The bounded queue between the watcher and the publisher.

use std::collections::VecDeque;
use std::sync::Mutex;

use alert_envelope::Envelope;
use clap::ValueEnum;
use tokio::sync::Notify;

/// What the buffer does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverflowPolicy {
    /// Drop the oldest buffered alert to make room (default: recent events matter most).
    DropOldest,
    /// Drop the incoming alert.
    DropNewest,
}

/// A bounded queue between the watcher and the publisher.
#[derive(Debug)]
pub struct EventBuffer {
    queue: Mutex<VecDeque<Envelope>>,
    capacity: usize,
    policy: OverflowPolicy,
    notify: Notify,
}

impl EventBuffer {
    /// A buffer of `capacity` envelopes.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> EventBuffer {
        EventBuffer {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            policy,
            notify: Notify::new(),
        }
    }

    /// Adds an envelope; returns the one dropped to keep the bound, if any.
    pub fn push(&self, env: Envelope) -> Option<Envelope> {
        let dropped = match self.queue.lock() {
            Ok(mut q) => {
                if q.len() < self.capacity {
                    q.push_back(env);
                    None
                } else {
                    match self.policy {
                        OverflowPolicy::DropOldest => {
                            let old = q.pop_front();
                            q.push_back(env);
                            old
                        }
                        OverflowPolicy::DropNewest => Some(env),
                    }
                }
            }
            Err(_) => Some(env),
        };
        self.notify.notify_one();
        dropped
    }

    /// Up to `max` envelopes, waiting until there is at least one.
    pub async fn pop_batch(&self, max: usize) -> Vec<Envelope> {
        loop {
            let notified = self.notify.notified();
            if let Ok(mut q) = self.queue.lock()
                && !q.is_empty()
            {
                let n = q.len().min(max);
                return q.drain(..n).collect();
            }
            notified.await;
        }
    }

    /// Buffered envelopes.
    pub fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the buffer, returning how many were dropped.
    pub fn clear(&self) -> usize {
        self.queue
            .lock()
            .map(|mut q| {
                let n = q.len();
                q.clear();
                n
            })
            .unwrap_or(0)
    }
}
