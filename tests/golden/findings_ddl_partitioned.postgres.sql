CREATE SCHEMA IF NOT EXISTS "rca";
CREATE TABLE IF NOT EXISTS "rca"."runs" (
  "run_id" TEXT,
  "rank" INT,
  "value" DOUBLE PRECISION,
  "significant" BOOLEAN,
  "created_at" TIMESTAMP
)
PARTITION BY (
  "run_id"
);
CREATE TABLE IF NOT EXISTS "rca"."root_causes" (
  "run_id" TEXT,
  "rank" INT,
  "value" DOUBLE PRECISION,
  "significant" BOOLEAN,
  "created_at" TIMESTAMP
)
PARTITION BY (
  "run_id"
)
