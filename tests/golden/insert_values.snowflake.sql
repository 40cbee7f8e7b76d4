INSERT INTO "sessions" (
  "ts",
  "device",
  "converted",
  "revenue"
)
VALUES
  (?, ?, ?, ?),
  (?, ?, ?, ?),
  (?, ?, ?, ?)
