WITH scoped AS (
  SELECT
    DATE_TRUNC('DAY', "session_start") AS bucket,
    CASE CAST("device" AS TEXT) WHEN 'desktop' THEN 1 WHEN 'mobile' THEN 2 ELSE 0 END AS d0,
    CASE CAST("channel" AS TEXT) WHEN 'it''s' THEN 1 ELSE 0 END AS d1,
    CAST("converted" AS DOUBLE PRECISION) AS rca_num,
    CAST(1 AS DOUBLE PRECISION) AS rca_den
  FROM "analytics"."sessions"
  WHERE
    "session_start" >= CAST('2026-10-01 00:00:00' AS TIMESTAMP)
    AND "session_start" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
    AND (
      (
        "country" IN ('US', 'CA') AND "amount" BETWEEN 0 AND 1000
      )
      AND (
        CAST((
          "converted"
        ) AS DOUBLE PRECISION) - CAST((
          "converted"
        ) AS DOUBLE PRECISION) = 0
        OR "converted" IS NULL
      )
    )
), leaves AS (
  SELECT
    bucket,
    d0,
    d1,
    SUM(rca_num) AS rca_num,
    SUM(rca_den) AS rca_den
  FROM scoped
  GROUP BY
    bucket,
    d0,
    d1
), cells AS (
  SELECT
    bucket,
    d0,
    d1,
    GROUPING(d0) * 1 + GROUPING(d1) * 2 + 0 AS rca_set,
    SUM(rca_num) AS rca_num,
    SUM(rca_den) AS rca_den
  FROM leaves
  GROUP BY
    GROUPING SETS (
      (bucket, d0, d1)
    )
)
SELECT
  bucket,
  COALESCE(SUM(CASE WHEN rca_set = 0 AND d0 = 2 THEN rca_num ELSE 0 END), 0) AS s0_num,
  COALESCE(SUM(CASE WHEN rca_set = 0 AND d0 = 2 THEN rca_den ELSE 0 END), 0) AS s0_den,
  COALESCE(SUM(CASE WHEN rca_set = 0 AND d0 = 1 AND d1 = 1 THEN rca_num ELSE 0 END), 0) AS s1_num,
  COALESCE(SUM(CASE WHEN rca_set = 0 AND d0 = 1 AND d1 = 1 THEN rca_den ELSE 0 END), 0) AS s1_den,
  COALESCE(SUM(CASE WHEN rca_set = 0 THEN rca_num ELSE 0 END), 0) AS num,
  COALESCE(SUM(CASE WHEN rca_set = 0 THEN rca_den ELSE 0 END), 0) AS den
FROM cells
GROUP BY
  bucket
ORDER BY
  bucket
