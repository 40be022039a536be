-- A job's source says whether a webhook or a command queued it, so no webhook name can pass for
-- a command: `webhook:<name>` or `command:<name>`. Rows from before carry the bare name; the
-- commands' jobs are the ones of their own kinds.
UPDATE jobs
SET source = CASE
    WHEN event_kind IN ('backfill', 'invite_task') THEN 'command:' || source
    ELSE 'webhook:' || source
END
WHERE source NOT LIKE 'webhook:%' AND source NOT LIKE 'command:%';
