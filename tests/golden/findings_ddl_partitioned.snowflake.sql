CREATE SCHEMA IF NOT EXISTS "rca";
CREATE TABLE IF NOT EXISTS "rca"."runs" (
  "run_id" VARCHAR,
  "rank" INT,
  "value" DOUBLE,
  "significant" BOOLEAN,
  "created_at" TIMESTAMPNTZ
)
PARTITION BY (
  "run_id"
);
CREATE TABLE IF NOT EXISTS "rca"."root_causes" (
  "run_id" VARCHAR,
  "rank" INT,
  "value" DOUBLE,
  "significant" BOOLEAN,
  "created_at" TIMESTAMPNTZ
)
PARTITION BY (
  "run_id"
)
