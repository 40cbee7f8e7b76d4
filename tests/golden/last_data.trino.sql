SELECT
  MAX(DATE_TRUNC('DAY', "session_start")) AS last_bucket
FROM "analytics"."sessions"
WHERE
  (
    "amount" > 0
    AND (
      CAST((
        "converted"
      ) AS DOUBLE) - CAST((
        "converted"
      ) AS DOUBLE) = 0
      OR "converted" IS NULL
    )
  )
