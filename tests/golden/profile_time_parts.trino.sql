SELECT
  COUNT(*) AS n_rows,
  SUM(CASE WHEN NOT "region" IS NULL THEN 1 ELSE 0 END) AS present_0,
  SUM(
    CASE
      WHEN CAST("region" AS DOUBLE) = CAST(EXTRACT(MONTH FROM "ts") AS DOUBLE)
      THEN 1
      ELSE 0
    END
  ) AS equal_0,
  SUM(CASE WHEN NOT "region" IS NULL THEN 1 ELSE 0 END) AS present_1,
  SUM(
    CASE
      WHEN CAST("region" AS DOUBLE) = CAST(EXTRACT(HOUR FROM "ts") AS DOUBLE)
      THEN 1
      ELSE 0
    END
  ) AS equal_1
FROM "analytics"."sessions"
