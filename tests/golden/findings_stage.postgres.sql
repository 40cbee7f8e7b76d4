CREATE TEMPORARY TABLE "rca_stage_0123abcd" (
  "run_id" TEXT,
  "rank" INT,
  "value" DOUBLE PRECISION,
  "significant" BOOLEAN,
  "created_at" TIMESTAMP
)
