SELECT
  COALESCE(SUM(CAST("predict" AS DOUBLE)), 0) AS baseline_value,
  COALESCE(SUM(CAST("real" AS DOUBLE)), 0) AS current_value
FROM "forecasts"
WHERE
  TRUE AND (
    COALESCE(CAST("a" AS VARCHAR), '(null)') = 'x'
  )
