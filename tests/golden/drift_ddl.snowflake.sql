CREATE SCHEMA IF NOT EXISTS "rca";
CREATE TABLE IF NOT EXISTS "rca"."dimension_drift" (
  "run_id" VARCHAR,
  "baseline_share" DOUBLE,
  "included" BOOLEAN,
  "recorded_at" TIMESTAMPNTZ
);
CREATE TABLE IF NOT EXISTS "rca"."dimension_frameworks" (
  "run_id" VARCHAR,
  "baseline_share" DOUBLE,
  "included" BOOLEAN,
  "recorded_at" TIMESTAMPNTZ
)
