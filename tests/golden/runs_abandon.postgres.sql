UPDATE "rca"."runs" SET status = 'abandoned', finished_at = CAST('2026-11-24 06:00:00' AS TIMESTAMP), error = 'abandoned'
WHERE
  status = 'running' AND started_at < CAST('2026-11-24 06:00:00' AS TIMESTAMP)
