INSERT INTO "rca"."runs" (
  "run_id",
  "rank",
  "value",
  "significant",
  "created_at"
)
VALUES
  (%s, %s, %s, %s, %s)
