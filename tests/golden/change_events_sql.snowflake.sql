SELECT
  "happened_at" AS event_time,
  CAST("title" AS VARCHAR) AS description,
  CAST(NULL AS VARCHAR) AS dimension,
  CAST(NULL AS VARCHAR) AS value
FROM (
  SELECT
    happened_at,
    title
  FROM ops.releases
  WHERE
    env = 'prod'
) AS "rca_events"
WHERE
  "happened_at" >= CAST('2026-10-01 00:00:00' AS TIMESTAMPNTZ)
  AND "happened_at" < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
ORDER BY
  1
