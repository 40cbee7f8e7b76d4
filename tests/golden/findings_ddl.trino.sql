CREATE SCHEMA IF NOT EXISTS "rca";
CREATE TABLE IF NOT EXISTS "rca"."runs" (
  "run_id" VARCHAR,
  "rank" INTEGER,
  "value" DOUBLE,
  "significant" BOOLEAN,
  "created_at" TIMESTAMP
);
CREATE TABLE IF NOT EXISTS "rca"."root_causes" (
  "run_id" VARCHAR,
  "rank" INTEGER,
  "value" DOUBLE,
  "significant" BOOLEAN,
  "created_at" TIMESTAMP
)
