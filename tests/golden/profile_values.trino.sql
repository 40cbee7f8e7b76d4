SELECT
  CAST("device" AS VARCHAR) AS v0,
  CAST("region" AS VARCHAR) AS v1,
  GROUPING("device") * 1 + GROUPING("region") * 2 AS rca_set,
  COUNT(*) AS n
FROM "analytics"."sessions"
GROUP BY
  GROUPING SETS (
    (
      "device"
    ),
    (
      "region"
    )
  )
