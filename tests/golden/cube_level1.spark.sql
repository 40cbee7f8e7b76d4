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
    CAST(`session_start` AS DATE) AS rca_day,
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
    rca_day,
    rca_num AS l_num,
    1 AS l_rows,
    rca_num * rca_num AS l_nn
  FROM scoped
), daily AS (
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
    rca_day,
    SUM(l_num) AS s_num,
    SUM(l_rows) AS s_rows,
    SUM(l_nn) AS s_nn
  FROM leaves
  GROUP BY
    GROUPING SETS (
      (rca_side, rca_day),
      (rca_side, rca_day, d0),
      (rca_side, rca_day, d1),
      (rca_side, rca_day, d2)
    )
), day_totals AS (
  SELECT
    daily.*,
    SUM(s_rows) OVER (PARTITION BY rca_set, rca_side, rca_day) AS t_den,
    SUM(s_num) OVER (PARTITION BY rca_set, rca_side, rca_day) AS t_num
  FROM daily
), sided AS (
  SELECT
    d0,
    d1,
    d2,
    rca_set,
    rca_side,
    SUM(s_num) AS s_num,
    SUM(s_rows) AS s_rows,
    SUM(s_nn) AS s_nn,
    SUM(s_num * s_num) AS s_cnn,
    SUM(s_rows * s_rows) AS s_cdd,
    SUM(s_num * s_rows) AS s_cnd,
    SUM(s_rows * t_den) AS s_cdt,
    SUM(s_num * t_num) AS s_cnt,
    COUNT(*) AS s_days
  FROM day_totals
  GROUP BY
    d0,
    d1,
    d2,
    rca_set,
    rca_side
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
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_cnn END), 0) AS base_cnn,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_cdd END), 0) AS base_cdd,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_cnd END), 0) AS base_cnd,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_cdt END), 0) AS base_cdt,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_cnt END), 0) AS base_cnt,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN s_days END), 0) AS base_days,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_cnn END), 0) AS cur_cnn,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_cdd END), 0) AS cur_cdd,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_cnd END), 0) AS cur_cnd,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_cdt END), 0) AS cur_cdt,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_cnt END), 0) AS cur_cnt,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN s_days END), 0) AS cur_days,
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
  SUM(base_cnn) AS base_cnn,
  SUM(base_cdd) AS base_cdd,
  SUM(base_cnd) AS base_cnd,
  SUM(base_cdt) AS base_cdt,
  SUM(base_cnt) AS base_cnt,
  SUM(base_days) AS base_days,
  SUM(cur_cnn) AS cur_cnn,
  SUM(cur_cdd) AS cur_cdd,
  SUM(cur_cnd) AS cur_cnd,
  SUM(cur_cdt) AS cur_cdt,
  SUM(cur_cnt) AS cur_cnt,
  SUM(cur_days) AS cur_days,
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
