//! The publisher: buffered envelopes to SNS.
//!
//! One retry stage: the events' [`alert_aws::SnsPublisher`], whose retry
//! policy is long (see `EVENT_PUBLISH_DEADLINE`), backs off and retries on
//! its own; what it still could not publish by its deadline goes back into
//! the buffer rather than round a second loop. Ids are made distinct before
//! each batch (a relist while the buffer is backed up can queue one event
//! twice), and ids SNS accepted lately are not published again.

use alert_aws::prepare;
use alert_envelope::Envelope;

use super::EventPipeline;

impl EventPipeline {
    /// Publishes buffered envelopes until cancelled. A refused envelope is
    /// dropped, counted and logged; one SNS could not take in time is
    /// buffered again.
    pub async fn publish_forever(&self) {
        loop {
            let batch = self.buffer.pop_batch(10).await;
            self.metrics.events().buffer_depth(self.buffer.len());
            self.publish_batch(batch).await;
        }
    }

    async fn publish_batch(&self, mut batch: Vec<Envelope>) {
        let duplicates = crate::sns::dedupe_by_id(&mut batch, |env| env.id.as_str());
        self.metrics.events().dropped("duplicate", duplicates);
        let before = batch.len();
        batch.retain(|env| {
            let published = self.recent.contains(&env.id);
            if published {
                self.watermark.finished(&env.id);
            }
            !published
        });
        self.metrics.already_published(before - batch.len());

        let fifo = self.publisher.is_fifo();
        let mut kept = Vec::with_capacity(batch.len());
        let mut prepared = Vec::with_capacity(batch.len());
        for env in batch {
            match prepare(env.clone(), fifo) {
                Ok(p) => {
                    prepared.push(p);
                    kept.push(env);
                }
                Err(e) => {
                    self.watermark.finished(&env.id);
                    self.metrics.failed("too_large", 1);
                    tracing::error!(id = %env.id, error = %e, "event alert too large for SNS; dropped");
                }
            }
        }
        if prepared.is_empty() {
            return;
        }
        let outcome = crate::sns::publish(&self.publisher, &prepared).await;
        self.metrics.published(outcome.accepted.len());
        self.recent
            .insert(outcome.accepted.iter().map(|&i| prepared[i].id.as_str()));
        for &i in &outcome.accepted {
            self.watermark.finished(&prepared[i].id);
        }
        for (i, c) in &outcome.permanent {
            self.watermark.finished(&prepared[*i].id);
            self.metrics.failed(&c.reason, 1);
            tracing::error!(id = %prepared[*i].id, reason = %c.reason, detail = %c.detail, "SNS refused an event alert; dropped");
        }
        if let Some((_, c)) = outcome.retryable.first() {
            tracing::warn!(alerts = outcome.retryable.len(), reason = %c.reason, detail = %c.detail, "event alerts not accepted before the publish deadline; buffered again");
        }
        for (i, _) in &outcome.retryable {
            if let Some(dropped) = self.buffer.push(kept[*i].clone()) {
                self.watermark.finished(&dropped.id);
                self.metrics.events().dropped("buffer_full", 1);
                tracing::warn!(id = %dropped.id, "event buffer full; dropped an alert (raise EVENT_BUFFER_SIZE or check SNS)");
            }
        }
        self.metrics.events().buffer_depth(self.buffer.len());
    }
}
