DROP TABLE IF EXISTS "rca_stage_0123abcd"
