CREATE TABLE "sessions" (
  "ts" TIMESTAMP,
  "device" TEXT,
  "converted" INT,
  "revenue" DOUBLE PRECISION
)
