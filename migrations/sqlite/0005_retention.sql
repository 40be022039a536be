-- Retention deletes `done` jobs oldest first, in small batches: this index finds each batch
-- without reading the jobs that stay.
CREATE INDEX jobs_done_updated ON jobs (updated_at) WHERE status = 'done';
