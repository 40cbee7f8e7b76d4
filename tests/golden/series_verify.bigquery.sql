SELECT
  period,
  numerator,
  denominator,
  numerator / NULLIF(denominator, 0) AS value
FROM (
  SELECT
    CASE
      WHEN `session_start` >= CAST('2026-11-17 00:00:00' AS DATETIME)
      AND `session_start` < CAST('2026-11-24 00:00:00' AS DATETIME)
      THEN 'current'
      ELSE 'baseline'
    END AS period,
    COALESCE(SUM(CAST(`converted` AS FLOAT64)), 0) AS numerator,
    COALESCE(SUM(CAST(1 AS FLOAT64)), 0) AS denominator
  FROM `analytics`.`sessions`
  WHERE
    (
      (
        `session_start` >= CAST('2026-11-10 00:00:00' AS DATETIME)
        AND `session_start` < CAST('2026-11-17 00:00:00' AS DATETIME)
      )
      OR (
        `session_start` >= CAST('2026-11-17 00:00:00' AS DATETIME)
        AND `session_start` < CAST('2026-11-24 00:00:00' AS DATETIME)
      )
    )
    AND (
      (
        `country` IN ('US', 'CA') AND `amount` BETWEEN 0 AND 1000
      )
      AND (
        CAST((
          `converted`
        ) AS FLOAT64) - CAST((
          `converted`
        ) AS FLOAT64) = 0
        OR `converted` IS NULL
      )
    )
    AND (
      CAST(`device` AS STRING) = 'mobile' AND CAST(`channel` AS STRING) = 'it\'s'
    )
  GROUP BY
    1
) AS verification
ORDER BY
  period NULLS LAST
