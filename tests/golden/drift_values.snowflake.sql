WITH scoped AS (
  SELECT
    CAST("device" AS VARCHAR) AS d0,
    CAST("region" AS VARCHAR) AS d1,
    CAST("channel" AS VARCHAR) AS d2,
    CASE
      WHEN "session_start" >= CAST('2026-11-17 00:00:00' AS TIMESTAMPNTZ)
      AND "session_start" < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
      THEN 1
      ELSE 0
    END AS rca_side,
    CAST(1 AS DOUBLE) AS rca_w
  FROM "analytics"."sessions"
  WHERE
    (
      (
        "session_start" >= CAST('2026-11-10 00:00:00' AS TIMESTAMPNTZ)
        AND "session_start" < CAST('2026-11-17 00:00:00' AS TIMESTAMPNTZ)
      )
      OR (
        "session_start" >= CAST('2026-11-17 00:00:00' AS TIMESTAMPNTZ)
        AND "session_start" < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
      )
    )
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
), per_value AS (
  SELECT
    CASE
      WHEN GROUPING(d0) = 1
      THEN NULL
      WHEN d0 IS NULL
      THEN '(null)'
      WHEN d0 LIKE '(%)' AND REPLACE(REPLACE(d0, '(', ''), ')', '') IN ('null', 'other')
      THEN '(' || d0 || ')'
      ELSE d0
    END AS d0,
    CASE
      WHEN GROUPING(d1) = 1
      THEN NULL
      WHEN d1 IS NULL
      THEN '(null)'
      WHEN d1 LIKE '(%)' AND REPLACE(REPLACE(d1, '(', ''), ')', '') IN ('null', 'other')
      THEN '(' || d1 || ')'
      ELSE d1
    END AS d1,
    CASE
      WHEN GROUPING(d2) = 1
      THEN NULL
      WHEN d2 IS NULL
      THEN '(null)'
      WHEN d2 LIKE '(%)' AND REPLACE(REPLACE(d2, '(', ''), ')', '') IN ('null', 'other')
      THEN '(' || d2 || ')'
      ELSE d2
    END AS d2,
    GROUPING(d0) * 1 + GROUPING(d1) * 2 + GROUPING(d2) * 4 AS rca_set,
    SUM(CASE WHEN rca_side = 0 THEN 1 ELSE 0 END) AS base_rows,
    SUM(CASE WHEN rca_side = 1 THEN 1 ELSE 0 END) AS cur_rows,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN rca_w ELSE 0 END), 0) AS base_w,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN rca_w ELSE 0 END), 0) AS cur_w
  FROM scoped
  GROUP BY
    GROUPING SETS (
      (
        d0
      ),
      (
        d1
      ),
      (
        d2
      )
    )
), shares AS (
  SELECT
    per_value.*,
    base_w / NULLIF(SUM(base_w) OVER (PARTITION BY rca_set), 0) AS base_share,
    cur_w / NULLIF(SUM(cur_w) OVER (PARTITION BY rca_set), 0) AS cur_share,
    SUM(CASE WHEN base_rows > 0 THEN 1 ELSE 0 END) OVER (PARTITION BY rca_set) AS base_values,
    SUM(CASE WHEN cur_rows > 0 THEN 1 ELSE 0 END) OVER (PARTITION BY rca_set) AS cur_values
  FROM per_value
)
SELECT
  *
FROM shares
WHERE
  (
    cur_share >= 0.05 AND COALESCE(base_share, 0) <= 0.005
  )
  OR (
    cur_values = 1 AND base_values > 1 AND cur_rows > 0
  )
