ALTER TABLE "rca"."runs"
ADD COLUMN "error" VARCHAR
