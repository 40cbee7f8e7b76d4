INSERT OVERWRITE TABLE "rca"."root_causes" PARTITION("run_id" = 'r-0001')
SELECT
  "rank",
  "value",
  "significant",
  "created_at"
FROM "rca_stage_0123abcd"
