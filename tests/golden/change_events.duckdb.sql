SELECT
  "happened_at" AS event_time,
  CAST("description" AS TEXT) AS description,
  CAST("dimension" AS TEXT) AS dimension,
  CAST("value" AS TEXT) AS value
FROM "ops"."change_events"
WHERE
  "happened_at" >= CAST('2026-10-01 00:00:00' AS TIMESTAMP)
  AND "happened_at" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
ORDER BY
  1
