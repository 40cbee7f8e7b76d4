SELECT
  DATE_TRUNC('DAY', "ds") AS bucket,
  COALESCE(SUM(CAST("real" AS DOUBLE)), 0) AS num,
  COALESCE(SUM(CAST(1 AS DOUBLE)), 0) AS den,
  COALESCE(SUM(CAST("predict" AS DOUBLE)), 0) AS expected
FROM "forecasts"
WHERE
  "ds" >= CAST('2026-10-27 00:00:00' AS TIMESTAMP)
  AND "ds" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
  AND (
    (
      "ds" >= CAST('2026-11-17 00:00:00' AS TIMESTAMP)
      AND "ds" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
    )
    AND (
      (
        CAST((
          "real"
        ) AS DOUBLE) - CAST((
          "real"
        ) AS DOUBLE) = 0 OR "real" IS NULL
      )
      AND (
        CAST((
          "predict"
        ) AS DOUBLE) - CAST((
          "predict"
        ) AS DOUBLE) = 0
        OR "predict" IS NULL
      )
    )
  )
GROUP BY
  1
ORDER BY
  1
