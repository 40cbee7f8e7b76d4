SELECT
  COALESCE(SUM(CAST(`predict` AS FLOAT64)), 0) AS baseline_value,
  COALESCE(SUM(CAST(`real` AS FLOAT64)), 0) AS current_value
FROM `forecasts`
WHERE
  TRUE
  AND (
    (
      CAST((
        `real`
      ) AS FLOAT64) - CAST((
        `real`
      ) AS FLOAT64) = 0
      OR `real` IS NULL
    )
    AND (
      CAST((
        `predict`
      ) AS FLOAT64) - CAST((
        `predict`
      ) AS FLOAT64) = 0
      OR `predict` IS NULL
    )
  )
  AND (
    CAST(`a` AS STRING) = 'x'
  )
