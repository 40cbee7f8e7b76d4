WITH scoped AS (
  SELECT
    CAST(`device` AS STRING) AS d0,
    CAST(`region` AS STRING) AS d1,
    CAST(`channel` AS STRING) AS d2,
    CASE
      WHEN `session_start` >= CAST('2026-11-17 00:00:00' AS TIMESTAMP_NTZ)
      AND `session_start` < CAST('2026-11-24 00:00:00' AS TIMESTAMP_NTZ)
      THEN 1
      ELSE 0
    END + CASE
      WHEN (
        CAST((
          `converted`
        ) AS DOUBLE) - CAST((
          `converted`
        ) AS DOUBLE) = 0
        OR `converted` IS NULL
      )
      THEN 0
      ELSE 2
    END AS rca_side,
    CAST(`converted` AS DOUBLE) AS rca_num,
    CAST(1 AS DOUBLE) AS rca_den
  FROM `analytics`.`sessions`
  WHERE
    TRUE
    AND (
      (
        `session_start` >= CAST('2026-11-10 00:00:00' AS TIMESTAMP_NTZ)
        AND `session_start` < CAST('2026-11-17 00:00:00' AS TIMESTAMP_NTZ)
      )
      OR (
        `session_start` >= CAST('2026-11-17 00:00:00' AS TIMESTAMP_NTZ)
        AND `session_start` < CAST('2026-11-24 00:00:00' AS TIMESTAMP_NTZ)
      )
    )
    AND (
      `country` IN ('US', 'CA') AND `amount` BETWEEN 0 AND 1000
    )
), leaves AS (
  SELECT
    d0,
    d1,
    d2,
    rca_side,
    COALESCE(SUM(rca_num), 0) AS l_num,
    COUNT(*) AS l_rows,
    COALESCE(SUM(rca_num * rca_num), 0) AS l_nn
  FROM scoped
  GROUP BY
    d0,
    d1,
    d2,
    rca_side
), sided AS (
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
    rca_side,
    SUM(l_num) AS s_num,
    SUM(l_rows) AS s_rows,
    SUM(l_nn) AS s_nn
  FROM leaves
  GROUP BY
    GROUPING SETS (
      (
        rca_side
      ),
      (rca_side, d0),
      (rca_side, d1),
      (rca_side, d2),
      (rca_side, d0, d1),
      (rca_side, d0, d2),
      (rca_side, d1, d2)
    )
), cube AS (
  SELECT
    d0,
    d1,
    d2,
    rca_set,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_num END), 0) AS base_num,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_num END), 0) AS cur_num,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_rows END), 0) AS base_den,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_rows END), 0) AS cur_den,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_rows END), 0) AS base_rows,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_rows END), 0) AS cur_rows,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_nn END), 0) AS base_nn,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_nn END), 0) AS cur_nn,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_rows END), 0) AS base_dd,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_rows END), 0) AS cur_dd,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_num END), 0) AS base_nd,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_num END), 0) AS cur_nd,
    COALESCE(SUM(CASE WHEN rca_side = 2 THEN s_rows END), 0) AS base_nonfinite,
    COALESCE(SUM(CASE WHEN rca_side = 3 THEN s_rows END), 0) AS cur_nonfinite
  FROM sided
  GROUP BY
    d0,
    d1,
    d2,
    rca_set
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
    ABS(
      (
        cur_num - g_base_num / NULLIF(g_base_den, 0) * cur_den
      ) / NULLIF(g_cur_den, 0) - (
        base_num - g_base_num / NULLIF(g_base_den, 0) * base_den
      ) / NULLIF(g_base_den, 0)
    ) AS abs_change,
    (
      base_rows + cur_rows
    ) / NULLIF(g_rows, 0) AS support_share
  FROM totals
), flagged AS (
  SELECT
    changes.*,
    CASE
      WHEN rca_set = 7
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
  CASE WHEN keep = 1 OR d2 IS NULL THEN d2 ELSE '(other)' END AS d2,
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
  SUM(cur_nd) AS cur_nd,
  SUM(base_nonfinite) AS base_nonfinite,
  SUM(cur_nonfinite) AS cur_nonfinite
FROM flagged
WHERE
  keep = 1 OR rca_set IN (6, 5, 3)
GROUP BY
  CASE WHEN keep = 1 OR d0 IS NULL THEN d0 ELSE '(other)' END,
  CASE WHEN keep = 1 OR d1 IS NULL THEN d1 ELSE '(other)' END,
  CASE WHEN keep = 1 OR d2 IS NULL THEN d2 ELSE '(other)' END,
  rca_set
