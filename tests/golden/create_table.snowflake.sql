CREATE TABLE "sessions" (
  "ts" TIMESTAMPNTZ,
  "device" VARCHAR,
  "converted" INT,
  "revenue" DOUBLE
)
