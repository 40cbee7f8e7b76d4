SELECT
  "happened_at" AS event_time,
  CAST("description" AS VARCHAR) AS description,
  CAST("dimension" AS VARCHAR) AS dimension,
  CAST("value" AS VARCHAR) AS value
FROM "ops"."change_events"
WHERE
  "happened_at" >= CAST('2026-10-01 00:00:00' AS TIMESTAMPNTZ)
  AND "happened_at" < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
ORDER BY
  1
