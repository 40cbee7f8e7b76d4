SELECT
  COALESCE(SUM(CAST("predict" AS DOUBLE)), 0) AS baseline_value,
  COALESCE(SUM(CAST("real" AS DOUBLE)), 0) AS current_value
FROM "forecasts"
WHERE
  TRUE
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
  AND (
    CAST("a" AS VARCHAR) = 'x'
  )
