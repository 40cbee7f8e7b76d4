CREATE SCHEMA IF NOT EXISTS "rca";
CREATE TABLE IF NOT EXISTS "rca"."dimension_drift" (
  "run_id" TEXT,
  "baseline_share" DOUBLE,
  "included" BOOLEAN,
  "recorded_at" TIMESTAMP
);
CREATE TABLE IF NOT EXISTS "rca"."dimension_frameworks" (
  "run_id" TEXT,
  "baseline_share" DOUBLE,
  "included" BOOLEAN,
  "recorded_at" TIMESTAMP
)
