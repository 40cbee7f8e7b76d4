ALTER TABLE "rca"."runs"
ADD "error" VARCHAR
