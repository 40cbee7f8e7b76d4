CREATE OR REPLACE VIEW "rca"."latest_runs" AS
SELECT
  "run_id",
  "rank",
  "value",
  "significant",
  "created_at"
FROM (
  SELECT
    r.*,
    ROW_NUMBER() OVER (PARTITION BY r.metric ORDER BY r.finished_at DESC NULLS LAST, r.run_id) AS rca_rank
  FROM "rca"."runs" AS r
  WHERE
    r.status = 'succeeded'
) AS ranked
WHERE
  rca_rank = 1;
CREATE OR REPLACE VIEW "rca"."latest_root_causes" AS
SELECT
  c.*
FROM "rca"."root_causes" AS c
JOIN "rca"."latest_runs" AS l
  ON c.run_id = l.run_id;
CREATE OR REPLACE VIEW "rca"."latest_incidents" AS
SELECT
  "run_id",
  "rank",
  "value",
  "significant",
  "created_at"
FROM (
  SELECT
    r.*,
    ROW_NUMBER() OVER (
      PARTITION BY r.metric
      ORDER BY r.current_start DESC NULLS LAST, r.finished_at DESC NULLS LAST, r.run_id
    ) AS rca_rank
  FROM "rca"."runs" AS r
  WHERE
    r.status = 'succeeded' AND r.origin = 'monitor'
) AS ranked
WHERE
  rca_rank = 1
