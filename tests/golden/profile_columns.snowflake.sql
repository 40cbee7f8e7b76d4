SELECT
  COUNT(*) AS n_rows,
  COUNT(DISTINCT "device") AS distinct_0,
  SUM(CASE WHEN "device" IS NULL THEN 1 ELSE 0 END) AS nulls_0,
  AVG(LENGTH(CAST("device" AS VARCHAR))) AS length_0,
  COUNT(DISTINCT "region") AS distinct_1,
  SUM(CASE WHEN "region" IS NULL THEN 1 ELSE 0 END) AS nulls_1,
  AVG(LENGTH(CAST("region" AS VARCHAR))) AS length_1,
  MIN(CAST("region" AS DOUBLE)) AS min_1,
  MAX(CAST("region" AS DOUBLE)) AS max_1,
  COUNT(DISTINCT "amount") AS distinct_2,
  SUM(CASE WHEN "amount" IS NULL THEN 1 ELSE 0 END) AS nulls_2,
  AVG(LENGTH(CAST("amount" AS VARCHAR))) AS length_2
FROM "analytics"."sessions"
