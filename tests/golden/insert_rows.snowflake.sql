INSERT INTO "rca"."runs" (
  "run_id",
  "rank",
  "value",
  "significant",
  "created_at"
)
VALUES
  (?, ?, ?, ?, ?)
