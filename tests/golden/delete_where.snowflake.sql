DELETE FROM "rca"."anomalies"
WHERE
  metric = 'conversion_rate'
  AND bucket_start >= CAST('2026-11-17 00:00:00' AS TIMESTAMPNTZ)
  AND bucket_start < CAST('2026-11-24 00:00:00' AS TIMESTAMPNTZ)
