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
    END AS rca_side,
    CAST(`revenue` AS DOUBLE) AS rca_num
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
      `country` IN ('US', 'CA')
      AND (
        CAST((
          `revenue`
        ) AS DOUBLE) - CAST((
          `revenue`
        ) AS DOUBLE) = 0
        OR `revenue` IS NULL
      )
    )
), leaves AS (
  SELECT
    d0,
    d1,
    d2,
    1.0 * COALESCE(SUM(CASE WHEN rca_side = 0 THEN rca_num ELSE 0 END), 0) AS l_exp,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN rca_num ELSE 0 END), 0) AS l_act,
    SUM(CASE WHEN rca_side = 0 THEN 1 ELSE 0 END) AS l_base_rows,
    SUM(CASE WHEN rca_side = 1 THEN 1 ELSE 0 END) AS l_cur_rows,
    COALESCE(SUM(CASE WHEN rca_side = 0 THEN rca_num * rca_num ELSE 0 END), 0) AS l_base_nn,
    COALESCE(SUM(CASE WHEN rca_side = 1 THEN rca_num * rca_num ELSE 0 END), 0) AS l_cur_nn
  FROM scoped
  GROUP BY
    d0,
    d1,
    d2
), scored AS (
  SELECT
    leaves.*,
    CASE
      WHEN ABS(l_act) + ABS(l_exp) > 0
      THEN 2 * (
        l_act - l_exp
      ) / (
        ABS(l_act) + ABS(l_exp)
      )
      ELSE 0
    END AS l_dev
  FROM leaves
), ranked AS (
  SELECT
    l_dev,
    ROW_NUMBER() OVER (ORDER BY l_dev DESC) AS r_hi,
    ROW_NUMBER() OVER (ORDER BY l_dev ASC NULLS LAST) AS r_lo
  FROM scored
  WHERE
    ABS(l_act) + ABS(l_exp) > 0
), tails AS (
  SELECT
    COALESCE(MAX(CASE WHEN r_hi = 6 THEN l_dev END), 0) AS t_hi,
    COALESCE(MIN(CASE WHEN r_lo = 6 THEN l_dev END), 0) AS t_lo,
    COUNT(*) AS t_n
  FROM ranked
), cutoff AS (
  SELECT
    CASE WHEN ABS(t_hi) >= ABS(t_lo) THEN 1 ELSE -1 END AS c_side,
    CASE WHEN ABS(t_hi) >= ABS(t_lo) THEN ABS(t_lo) ELSE ABS(t_hi) END AS c_cut,
    CASE
      WHEN t_n > 12
      THEN (
        CASE WHEN ABS(t_hi) >= ABS(t_lo) THEN ABS(t_lo) ELSE ABS(t_hi) END
      ) * LN(CAST(t_n AS DOUBLE) / 0.05) / LN(CAST(t_n AS DOUBLE) / 6)
      ELSE 2
    END AS c_reach
  FROM tails
), flagged AS (
  SELECT
    scored.*,
    CASE
      WHEN ABS(l_act) + ABS(l_exp) > 0
      AND l_dev * (
        SELECT
          c_side
        FROM cutoff
      ) > (
        SELECT
          c_cut
        FROM cutoff
      )
      THEN 1
      ELSE 0
    END AS l_ab
  FROM scored
), weighted AS (
  SELECT
    flagged.*,
    CASE
      WHEN l_ab = 1
      THEN CASE WHEN ABS(l_dev) > 1 THEN 1 ELSE ABS(l_dev) END
      ELSE 0
    END AS l_ab_w,
    CASE
      WHEN l_ab = 1 OR ABS(l_act) + ABS(l_exp) = 0
      THEN 0
      WHEN ABS(
        (
          SELECT
            c_side
          FROM cutoff
        ) * (
          SELECT
            c_cut
          FROM cutoff
        ) - l_dev
      ) > 1
      THEN 1
      ELSE ABS(
        (
          SELECT
            c_side
          FROM cutoff
        ) * (
          SELECT
            c_cut
          FROM cutoff
        ) - l_dev
      )
    END AS l_nor_w,
    CASE WHEN ABS(l_act) + ABS(l_exp) > 0 THEN 1 ELSE 0 END AS l_live,
    CASE
      WHEN l_ab = 1
      AND l_dev * (
        SELECT
          c_side
        FROM cutoff
      ) > (
        SELECT
          c_reach
        FROM cutoff
      )
      THEN 1
      ELSE 0
    END AS l_far
  FROM flagged
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
    SUM(l_exp) / 1.0 AS base_num,
    SUM(l_act) AS cur_num,
    SUM(l_base_rows) AS base_den,
    SUM(l_cur_rows) AS cur_den,
    SUM(l_base_rows) AS base_rows,
    SUM(l_cur_rows) AS cur_rows,
    SUM(l_base_nn) AS base_nn,
    SUM(l_cur_nn) AS cur_nn,
    SUM(l_base_rows) AS base_dd,
    SUM(l_cur_rows) AS cur_dd,
    SUM(l_exp) / 1.0 AS base_nd,
    SUM(l_act) AS cur_nd,
    COUNT(*) AS leaves,
    SUM(l_ab) AS ab_leaves,
    SUM(l_far) AS far_leaves,
    SUM(l_ab_w) AS ab_w,
    SUM(l_nor_w) AS nor_w,
    SUM(CASE WHEN l_ab = 1 THEN l_act - l_exp ELSE 0 END) AS ab_change,
    SUM(l_live) AS dev_n,
    SUM(l_dev) AS dev_sum,
    SUM(l_dev * l_dev) AS dev_sq,
    MAX((
      SELECT
        c_cut
      FROM cutoff
    )) AS cutoff,
    MAX((
      SELECT
        c_side
      FROM cutoff
    )) AS side
  FROM weighted
  GROUP BY
    GROUPING SETS (
      (),
      (
        d0
      ),
      (
        d1
      ),
      (
        d2
      ),
      (d0, d1),
      (d0, d2),
      (d1, d2)
    )
)
SELECT
  *
FROM cube
WHERE
  rca_set = 7
  OR (
    ab_leaves > 0
    AND (
      3 * ab_w >= ab_w + nor_w OR rca_set = 4 OR rca_set = 2 OR rca_set = 1
    )
  )
