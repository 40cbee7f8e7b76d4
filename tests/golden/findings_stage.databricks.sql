CREATE TEMPORARY TABLE `rca_stage_0123abcd` (
  `run_id` STRING,
  `rank` INT,
  `value` DOUBLE,
  `significant` BOOLEAN,
  `created_at` TIMESTAMP_NTZ
)
USING PARQUET
