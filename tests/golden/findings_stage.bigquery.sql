CREATE TEMPORARY TABLE `rca_stage_0123abcd` (
  `run_id` STRING,
  `rank` INT64,
  `value` FLOAT64,
  `significant` BOOL,
  `created_at` DATETIME
)
