INSERT INTO "sessions" (
  "ts",
  "device",
  "converted",
  "revenue"
)
VALUES
  (%s, %s, %s, %s),
  (%s, %s, %s, %s),
  (%s, %s, %s, %s)
