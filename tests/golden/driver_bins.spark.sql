WITH scoped AS (
  SELECT
    CASE
      WHEN `session_start` >= CAST('2026-11-17 00:00:00' AS TIMESTAMP_NTZ)
      AND `session_start` < CAST('2026-11-24 00:00:00' AS TIMESTAMP_NTZ)
      THEN 1
      ELSE 0
    END AS rca_side,
    CASE
      WHEN CAST(`device` AS STRING) = 'mobile' AND `employees` >= 500.0
      THEN 1
      ELSE 0
    END AS rca_c0,
    CASE WHEN CAST(`channel` AS STRING) = 'it\'s' THEN 1 ELSE 0 END AS rca_c1,
    CAST(`employees` AS DOUBLE) AS rca_v0,
    CAST(`page load_ms` / 1000 AS DOUBLE) AS rca_v1,
    CAST(`converted` AS DOUBLE) AS rca_num,
    CAST(1 AS DOUBLE) AS rca_den
  FROM `analytics`.`sessions`
  WHERE
    (
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
      (
        `country` IN ('US', 'CA') AND `amount` BETWEEN 0 AND 1000
      )
      AND (
        CAST((
          `converted`
        ) AS DOUBLE) - CAST((
          `converted`
        ) AS DOUBLE) = 0
        OR `converted` IS NULL
      )
    )
), binned AS (
  SELECT
    rca_side,
    rca_num,
    rca_den,
    rca_c0,
    rca_c1,
    CASE WHEN rca_v0 - rca_v0 = 0 THEN rca_v0 END AS rca_x0,
    CASE
      WHEN NOT (
        rca_v0 - rca_v0 = 0
      )
      THEN NULL
      WHEN rca_v0 > 0
      THEN 1
      WHEN rca_v0 < 0
      THEN -1
      WHEN rca_v0 = 0
      THEN 0
    END AS rca_s0,
    CASE
      WHEN rca_v0 - rca_v0 = 0 AND rca_v0 <> 0
      THEN CAST(FLOOR(LN(ABS(rca_v0)) * 8) AS BIGINT)
    END AS rca_k0,
    CASE WHEN rca_v1 - rca_v1 = 0 THEN rca_v1 END AS rca_x1,
    CASE
      WHEN NOT (
        rca_v1 - rca_v1 = 0
      )
      THEN NULL
      WHEN rca_v1 > 0
      THEN 1
      WHEN rca_v1 < 0
      THEN -1
      WHEN rca_v1 = 0
      THEN 0
    END AS rca_s1,
    CASE
      WHEN rca_v1 - rca_v1 = 0 AND rca_v1 <> 0
      THEN CAST(FLOOR(LN(ABS(rca_v1)) * 8) AS BIGINT)
    END AS rca_k1
  FROM scoped
)
SELECT
  GROUPING(rca_c0) * 1 + GROUPING(rca_c1) * 2 + GROUPING(rca_s0) * 4 + GROUPING(rca_s1) * 8 AS rca_set,
  rca_side,
  rca_c0,
  rca_c1,
  rca_s0,
  rca_k0,
  COUNT(rca_x0) AS rca_n0,
  COALESCE(SUM(rca_x0), 0) AS rca_sx0,
  COALESCE(SUM(rca_x0 * rca_x0), 0) AS rca_sxx0,
  rca_s1,
  rca_k1,
  COUNT(rca_x1) AS rca_n1,
  COALESCE(SUM(rca_x1), 0) AS rca_sx1,
  COALESCE(SUM(rca_x1 * rca_x1), 0) AS rca_sxx1,
  COUNT(*) AS s_rows,
  COALESCE(SUM(rca_num), 0) AS s_num,
  COALESCE(SUM(rca_den), 0) AS s_den
FROM binned
GROUP BY
  GROUPING SETS (
    (rca_side, rca_c0, rca_s0, rca_k0),
    (rca_side, rca_c0, rca_s1, rca_k1),
    (rca_side, rca_c1, rca_s0, rca_k0),
    (rca_side, rca_c1, rca_s1, rca_k1)
  )
