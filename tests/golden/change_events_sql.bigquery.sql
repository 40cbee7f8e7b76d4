SELECT
  `happened_at` AS event_time,
  CAST(`title` AS STRING) AS description,
  CAST(NULL AS STRING) AS dimension,
  CAST(NULL AS STRING) AS value
FROM (
  SELECT
    happened_at,
    title
  FROM ops.releases
  WHERE
    env = 'prod'
) AS `rca_events`
WHERE
  `happened_at` >= CAST('2026-10-01 00:00:00' AS DATETIME)
  AND `happened_at` < CAST('2026-11-24 00:00:00' AS DATETIME)
ORDER BY
  1 NULLS LAST
