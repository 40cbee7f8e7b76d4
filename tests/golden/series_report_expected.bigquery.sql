SELECT
  TIMESTAMP_TRUNC(`ds`, DAY) AS bucket,
  COALESCE(SUM(CAST(`real` AS FLOAT64)), 0) AS num,
  COALESCE(SUM(CAST(1 AS FLOAT64)), 0) AS den,
  COALESCE(SUM(CAST(`predict` AS FLOAT64)), 0) AS expected
FROM `forecasts`
WHERE
  `ds` >= CAST('2026-10-27 00:00:00' AS DATETIME)
  AND `ds` < CAST('2026-11-24 00:00:00' AS DATETIME)
  AND (
    (
      `ds` >= CAST('2026-11-17 00:00:00' AS DATETIME)
      AND `ds` < CAST('2026-11-24 00:00:00' AS DATETIME)
    )
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
  )
GROUP BY
  1
ORDER BY
  1 NULLS LAST
