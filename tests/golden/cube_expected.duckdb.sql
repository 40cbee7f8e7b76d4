WITH scoped AS (
  SELECT
    CAST("a" AS TEXT) AS d0,
    CAST("b" AS TEXT) AS d1,
    CAST("predict" AS DOUBLE) AS rca_base_num,
    CAST("real" AS DOUBLE) AS rca_num,
    CAST(1 AS DOUBLE) AS rca_base_den,
    CAST(1 AS DOUBLE) AS rca_den
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
), leaves AS (
  SELECT
    d0,
    d1,
    COALESCE(SUM(rca_base_num), 0) AS l_base_num,
    COALESCE(SUM(rca_num), 0) AS l_cur_num,
    COALESCE(SUM(rca_base_den), 0) AS l_base_den,
    COALESCE(SUM(rca_den), 0) AS l_cur_den,
    COUNT(*) AS l_base_rows,
    COUNT(*) AS l_cur_rows,
    COALESCE(SUM(rca_base_num * rca_base_num), 0) AS l_base_nn,
    COALESCE(SUM(rca_num * rca_num), 0) AS l_cur_nn,
    COALESCE(SUM(rca_base_den * rca_base_den), 0) AS l_base_dd,
    COALESCE(SUM(rca_den * rca_den), 0) AS l_cur_dd,
    COALESCE(SUM(rca_base_num * rca_base_den), 0) AS l_base_nd,
    COALESCE(SUM(rca_num * rca_den), 0) AS l_cur_nd
  FROM scoped
  GROUP BY
    d0,
    d1
), cube AS (
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
    GROUPING(d0) * 1 + GROUPING(d1) * 2 AS rca_set,
    SUM(l_base_num) AS base_num,
    SUM(l_cur_num) AS cur_num,
    SUM(l_base_den) AS base_den,
    SUM(l_cur_den) AS cur_den,
    SUM(l_base_rows) AS base_rows,
    SUM(l_cur_rows) AS cur_rows,
    SUM(l_base_nn) AS base_nn,
    SUM(l_cur_nn) AS cur_nn,
    SUM(l_base_dd) AS base_dd,
    SUM(l_cur_dd) AS cur_dd,
    SUM(l_base_nd) AS base_nd,
    SUM(l_cur_nd) AS cur_nd
  FROM leaves
  GROUP BY
    GROUPING SETS (
      (),
      (
        d0
      ),
      (
        d1
      ),
      (d0, d1)
    )
), totals AS (
  SELECT
    cube.*,
    SUM(base_num) OVER (PARTITION BY rca_set) AS g_base_num,
    SUM(base_den) OVER (PARTITION BY rca_set) AS g_base_den,
    SUM(cur_den) OVER (PARTITION BY rca_set) AS g_cur_den,
    CAST(SUM(base_rows + cur_rows) OVER (PARTITION BY rca_set) AS DOUBLE) AS g_rows
  FROM cube
), changes AS (
  SELECT
    totals.*,
    ABS(cur_num - 1.0 * base_num) AS abs_change,
    (
      base_rows + cur_rows
    ) / NULLIF(g_rows, 0) AS support_share
  FROM totals
), flagged AS (
  SELECT
    changes.*,
    CASE
      WHEN rca_set = 3
      THEN 1
      WHEN support_share >= 0.005
      THEN 1
      WHEN abs_change > 0
      AND abs_change >= 0.005 * SUM(abs_change) OVER (PARTITION BY rca_set)
      THEN 1
      ELSE 0
    END AS keep
  FROM changes
)
SELECT
  CASE WHEN keep = 1 OR d0 IS NULL THEN d0 ELSE '(other)' END AS d0,
  CASE WHEN keep = 1 OR d1 IS NULL THEN d1 ELSE '(other)' END AS d1,
  rca_set,
  SUM(base_num) AS base_num,
  SUM(cur_num) AS cur_num,
  SUM(base_den) AS base_den,
  SUM(cur_den) AS cur_den,
  SUM(base_rows) AS base_rows,
  SUM(cur_rows) AS cur_rows,
  SUM(base_nn) AS base_nn,
  SUM(cur_nn) AS cur_nn,
  SUM(base_dd) AS base_dd,
  SUM(cur_dd) AS cur_dd,
  SUM(base_nd) AS base_nd,
  SUM(cur_nd) AS cur_nd
FROM flagged
WHERE
  keep = 1 OR rca_set IN (2, 1)
GROUP BY
  CASE WHEN keep = 1 OR d0 IS NULL THEN d0 ELSE '(other)' END,
  CASE WHEN keep = 1 OR d1 IS NULL THEN d1 ELSE '(other)' END,
  rca_set
