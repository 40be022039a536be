-- A job that has not started yet reads the task's current assignee when it runs, so further events
-- for that task add nothing while it waits: `unstarted_task_gid` is the task's gid from the job's
-- creation until its first claim (NULL otherwise), and unique. NULLs never conflict.
ALTER TABLE jobs ADD COLUMN unstarted_task_gid TEXT;

UPDATE jobs SET unstarted_task_gid = task_gid
WHERE id IN (SELECT MIN(id) FROM jobs WHERE status = 'pending' AND attempts = 0 GROUP BY task_gid);

CREATE UNIQUE INDEX jobs_one_unstarted_per_task ON jobs (unstarted_task_gid);

-- The project of the webhook that queued a job, read with the webhook's secret at ingress: the job
-- acts only on that project's tasks. NULL for commands' jobs and webhooks without a project.
ALTER TABLE jobs ADD COLUMN project_gid TEXT;

UPDATE jobs SET project_gid = (SELECT w.project_gid FROM webhooks w WHERE w.name = jobs.source)
WHERE status IN ('pending', 'running') AND event_kind IN ('assignee_changed', 'task_added');
