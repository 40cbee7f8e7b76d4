SELECT
  DATE_TRUNC('DAY', "session_start") AS bucket,
  COALESCE(SUM(CAST("converted" AS DOUBLE)), 0) AS num,
  COALESCE(SUM(CAST(1 AS DOUBLE)), 0) AS den,
  COUNT(*) AS n_rows
FROM "analytics"."sessions"
WHERE
  "session_start" >= CAST('2026-11-17 00:00:00' AS TIMESTAMPNTZ)
  AND "session_start" < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
  AND (
    (
      "country" IN ('US', 'CA') AND "amount" BETWEEN 0 AND 1000
    )
    AND (
      CAST((
        "converted"
      ) AS DOUBLE) - CAST((
        "converted"
      ) AS DOUBLE) = 0
      OR "converted" IS NULL
    )
  )
GROUP BY
  1
ORDER BY
  1
