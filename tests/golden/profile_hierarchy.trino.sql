SELECT
  COALESCE(CAST("region" AS VARCHAR), '(null)') AS h0,
  COALESCE(CAST("city" AS VARCHAR), '(null)') AS h1,
  COUNT(*) AS n
FROM "analytics"."sessions"
WHERE
  COALESCE(CAST("city" AS VARCHAR), '(null)') IN ('Lyon', 'it''s')
  AND (
    "amount" > 0
  )
GROUP BY
  COALESCE(CAST("region" AS VARCHAR), '(null)'),
  COALESCE(CAST("city" AS VARCHAR), '(null)')
