DELETE FROM "rca"."runs"
WHERE
  run_id = 'r-0001'
  AND (
    attempt_id = 'a-0001'
    OR attempt_id IS NULL
    OR status <> 'running'
    OR started_at <= CAST('2026-11-24 06:00:00' AS TIMESTAMPNTZ)
  )
