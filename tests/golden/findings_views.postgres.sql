CREATE OR REPLACE VIEW "rca"."latest_runs" AS
SELECT
  *
FROM (
  SELECT
    r.*,
    ROW_NUMBER() OVER (PARTITION BY r.metric ORDER BY r.finished_at DESC NULLS LAST, r.run_id) AS rn
  FROM "rca"."runs" AS r
  WHERE
    r.status = 'succeeded'
) AS ranked
WHERE
  rn = 1;
CREATE OR REPLACE VIEW "rca"."latest_root_causes" AS
SELECT
  c.*
FROM "rca"."root_causes" AS c
JOIN "rca"."latest_runs" AS l
  ON c.run_id = l.run_id
