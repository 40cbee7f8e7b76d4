WITH paths AS (
  SELECT
    CAST(`region` AS STRING) AS h0,
    CAST(`city` AS STRING) AS h1,
    COUNT(*) AS n
  FROM `analytics`.`sessions`
  WHERE
    (
      `city`
    )
    AND (
      `amount` > 0
      AND (
        CAST((
          `converted`
        ) AS DOUBLE) - CAST((
          `converted`
        ) AS DOUBLE) = 0
        OR `converted` IS NULL
      )
    )
  GROUP BY
    CAST(`region` AS STRING),
    CAST(`city` AS STRING)
)
SELECT
  CASE
    WHEN h0 IS NULL
    THEN '(null)'
    WHEN h0 LIKE '(%)' AND REPLACE(REPLACE(h0, '(', ''), ')', '') IN ('null', 'other')
    THEN '(' || h0 || ')'
    ELSE h0
  END AS h0,
  CASE
    WHEN h1 IS NULL
    THEN '(null)'
    WHEN h1 LIKE '(%)' AND REPLACE(REPLACE(h1, '(', ''), ')', '') IN ('null', 'other')
    THEN '(' || h1 || ')'
    ELSE h1
  END AS h1,
  n
FROM paths
