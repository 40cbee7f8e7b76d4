CREATE OR REPLACE VIEW "rca"."latest_feedback" AS
SELECT
  "feedback_id",
  "verdict"
FROM (
  SELECT
    f.*,
    ROW_NUMBER() OVER (PARTITION BY f.run_id, f.finding_id ORDER BY f.created_at DESC, f.feedback_id) AS rca_rank
  FROM "rca"."feedback" AS f
) AS ranked
WHERE
  rca_rank = 1;
CREATE OR REPLACE VIEW "rca"."knowledge_base" AS
SELECT
  metric,
  segment,
  MAX(segment_label) AS segment_label,
  SUM(CASE WHEN verdict = 'confirmed' THEN 1 ELSE 0 END) AS confirmations,
  SUM(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END) AS rejections,
  CASE
    WHEN SUM(CASE WHEN verdict = 'confirmed' THEN 1 ELSE 0 END) > SUM(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END)
    THEN 3.0
    WHEN SUM(CASE WHEN verdict = 'confirmed' THEN 1 ELSE 0 END) < SUM(CASE WHEN verdict = 'rejected' THEN 1 ELSE 0 END)
    THEN 1.0 / 3
    ELSE 1.0
  END AS ranking_prior,
  MAX(created_at) AS last_feedback_at
FROM "rca"."latest_feedback"
GROUP BY
  metric,
  segment;
CREATE OR REPLACE VIEW "rca"."open_incidents" AS
SELECT
  "run_id",
  "metric"
FROM (
  SELECT
    r.*,
    ROW_NUMBER() OVER (PARTITION BY r.run_id ORDER BY r.finished_at DESC, r.attempt_id) AS rca_rank
  FROM "rca"."runs" AS r
  WHERE
    r.status = 'succeeded'
    AND r.origin = 'monitor'
    AND NOT r.run_id IN (
      SELECT
        v.run_id
      FROM "rca"."latest_feedback" AS v
      WHERE
        NOT v.run_id IS NULL
    )
) AS ranked
WHERE
  rca_rank = 1
