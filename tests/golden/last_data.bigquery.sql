SELECT
  MAX(TIMESTAMP_TRUNC(`session_start`, DAY)) AS last_bucket
FROM `analytics`.`sessions`
WHERE
  (
    `amount` > 0
    AND (
      CAST((
        `converted`
      ) AS FLOAT64) - CAST((
        `converted`
      ) AS FLOAT64) = 0
      OR `converted` IS NULL
    )
  )
