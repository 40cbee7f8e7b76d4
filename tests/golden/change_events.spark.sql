SELECT
  `happened_at` AS event_time,
  CAST(`description` AS STRING) AS description,
  CAST(`dimension` AS STRING) AS dimension,
  CAST(`value` AS STRING) AS value
FROM `ops`.`change_events`
WHERE
  `happened_at` >= CAST('2026-10-01 00:00:00' AS TIMESTAMP_NTZ)
  AND `happened_at` < CAST('2026-11-24 00:00:00' AS TIMESTAMP_NTZ)
ORDER BY
  1 NULLS LAST
