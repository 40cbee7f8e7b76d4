WITH scoped AS (
  SELECT
    DATE_TRUNC('DAY', "session_start") AS bucket,
    CASE
      WHEN COALESCE(CAST("device" AS TEXT), '(null)') IN ('desktop', 'mobile')
      THEN COALESCE(CAST("device" AS TEXT), '(null)')
      ELSE '(other)'
    END AS d0,
    CASE
      WHEN COALESCE(CAST("channel" AS TEXT), '(null)') IN ('it''s')
      THEN COALESCE(CAST("channel" AS TEXT), '(null)')
      ELSE '(other)'
    END AS d1,
    CAST("converted" AS DOUBLE) AS rca_num,
    CAST(1 AS DOUBLE) AS rca_den
  FROM "analytics"."sessions"
  WHERE
    "session_start" >= CAST('2026-10-01 00:00:00' AS TIMESTAMP)
    AND "session_start" < CAST('2026-11-24 00:00:00' AS TIMESTAMP)
    AND (
      "country" IN ('US', 'CA') AND "amount" BETWEEN 0 AND 1000
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
)
SELECT
  bucket,
  COALESCE(SUM(CASE WHEN d0 = 'mobile' THEN rca_num ELSE 0 END), 0) AS s0_num,
  COALESCE(SUM(CASE WHEN d0 = 'mobile' THEN rca_den ELSE 0 END), 0) AS s0_den,
  COALESCE(SUM(CASE WHEN d0 = 'desktop' AND d1 = 'it''s' THEN rca_num ELSE 0 END), 0) AS s1_num,
  COALESCE(SUM(CASE WHEN d0 = 'desktop' AND d1 = 'it''s' THEN rca_den ELSE 0 END), 0) AS s1_den,
  COALESCE(SUM(rca_num), 0) AS num,
  COALESCE(SUM(rca_den), 0) AS den
FROM leaves
GROUP BY
  bucket
ORDER BY
  bucket
