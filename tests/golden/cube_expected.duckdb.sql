WITH scoped AS (
  SELECT
    COALESCE(CAST("a" AS TEXT), '(null)') AS d0,
    COALESCE(CAST("b" AS TEXT), '(null)') AS d1,
    CAST("predict" AS DOUBLE) AS rca_base_num,
    CAST("real" AS DOUBLE) AS rca_num,
    CAST(1 AS DOUBLE) AS rca_base_den,
    CAST(1 AS DOUBLE) AS rca_den
  FROM "forecasts"
  WHERE
    TRUE
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
    d0,
    d1,
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
), grand AS (
  SELECT
    base_num AS g_base_num,
    base_den AS g_base_den,
    cur_den AS g_cur_den,
    CAST(base_rows + cur_rows AS DOUBLE) AS g_rows
  FROM cube
  WHERE
    rca_set = 3
), changes AS (
  SELECT
    cube.*,
    ABS(cur_num - 1.0 * base_num) AS abs_change,
    (
      base_rows + cur_rows
    ) / NULLIF((
      SELECT
        g_rows
      FROM grand
    ), 0) AS support_share
  FROM cube
), set_changes AS (
  SELECT
    rca_set,
    SUM(abs_change) AS set_abs_change
  FROM changes
  GROUP BY
    rca_set
), flagged AS (
  SELECT
    changes.*,
    CASE
      WHEN changes.rca_set = 3
      THEN 1
      WHEN support_share >= 0.005
      THEN 1
      WHEN abs_change > 0 AND abs_change >= 0.005 * set_abs_change
      THEN 1
      ELSE 0
    END AS keep
  FROM changes
  JOIN set_changes
    ON changes.rca_set = set_changes.rca_set
)
SELECT
  d0,
  d1,
  rca_set,
  base_num,
  cur_num,
  base_den,
  cur_den,
  base_rows,
  cur_rows,
  base_nn,
  cur_nn,
  base_dd,
  cur_dd,
  base_nd,
  cur_nd
FROM flagged
WHERE
  keep = 1
UNION ALL
SELECT
  CASE WHEN rca_set = 2 THEN '(other)' END AS d0,
  CASE WHEN rca_set = 1 THEN '(other)' END AS d1,
  rca_set,
  SUM(base_num),
  SUM(cur_num),
  SUM(base_den),
  SUM(cur_den),
  SUM(base_rows),
  SUM(cur_rows),
  SUM(base_nn),
  SUM(cur_nn),
  SUM(base_dd),
  SUM(cur_dd),
  SUM(base_nd),
  SUM(cur_nd)
FROM flagged
WHERE
  keep = 0 AND rca_set IN (2, 1)
GROUP BY
  rca_set
