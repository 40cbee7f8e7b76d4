WITH pairs AS (
  SELECT
    GROUPING("device") * 1 + GROUPING("region") * 2 + GROUPING("amount") * 4 AS rca_set
  FROM "analytics"."sessions"
  GROUP BY
    GROUPING SETS (
      ("device", "region"),
      ("device", "amount")
    )
)
SELECT
  rca_set,
  COUNT(*) AS n
FROM pairs
GROUP BY
  rca_set
