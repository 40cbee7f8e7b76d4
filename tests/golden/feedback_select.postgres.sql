SELECT
  *
FROM "rca"."runs"
WHERE
  "metric" = 'conversion_rate' AND "status" = 'succeeded'
ORDER BY
  "current_start" DESC NULLS LAST,
  "finished_at" DESC NULLS LAST
LIMIT 20
