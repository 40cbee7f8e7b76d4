CREATE TEMPORARY TABLE "rca_stage_0123abcd" (
  "run_id" VARCHAR,
  "rank" INT,
  "value" DOUBLE,
  "significant" BOOLEAN,
  "created_at" TIMESTAMPNTZ
)
