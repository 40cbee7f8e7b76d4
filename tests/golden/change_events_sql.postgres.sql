SELECT
  "happened_at" AS event_time,
  CAST("title" AS TEXT) AS description,
  CAST(NULL AS TEXT) AS dimension,
  CAST(NULL AS TEXT) AS value
FROM (
  SELECT
    happened_at,
    title
  FROM ops.releases
  WHERE
    env = 'prod'
) AS "rca_events"
WHERE
  "happened_at" >= CAST('2026-10-01 00:00:00' AS TIMESTAMP)
  AND "happened_at" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
ORDER BY
  1
