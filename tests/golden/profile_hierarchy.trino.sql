WITH paths AS (
  SELECT
    CAST("region" AS VARCHAR) AS h0,
    CAST("city" AS VARCHAR) AS h1,
    COUNT(*) AS n
  FROM "analytics"."sessions"
  WHERE
    (
      "city"
    )
    AND (
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
  GROUP BY
    CAST("region" AS VARCHAR),
    CAST("city" AS VARCHAR)
)
SELECT
  CASE
    WHEN h0 IS NULL
    THEN '(null)'
    WHEN h0 LIKE '(%)' AND REPLACE(REPLACE(h0, '(', ''), ')', '') IN ('null', 'other')
    THEN CONCAT(CAST('(' AS VARCHAR), CAST(h0 AS VARCHAR), CAST(')' AS VARCHAR))
    ELSE h0
  END AS h0,
  CASE
    WHEN h1 IS NULL
    THEN '(null)'
    WHEN h1 LIKE '(%)' AND REPLACE(REPLACE(h1, '(', ''), ')', '') IN ('null', 'other')
    THEN CONCAT(CAST('(' AS VARCHAR), CAST(h1 AS VARCHAR), CAST(')' AS VARCHAR))
    ELSE h1
  END AS h1,
  n
FROM paths
