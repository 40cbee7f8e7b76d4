SELECT
  COALESCE(CAST("region" AS TEXT), '(null)') AS h0,
  COALESCE(CAST("city" AS TEXT), '(null)') AS h1,
  COUNT(*) AS n
FROM "analytics"."sessions"
WHERE
  COALESCE(CAST("city" AS TEXT), '(null)') IN ('Lyon', 'it''s')
  AND (
    "amount" > 0
  )
GROUP BY
  COALESCE(CAST("region" AS TEXT), '(null)'),
  COALESCE(CAST("city" AS TEXT), '(null)')
