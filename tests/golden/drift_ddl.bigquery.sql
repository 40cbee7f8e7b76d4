CREATE SCHEMA IF NOT EXISTS `rca`;
CREATE TABLE IF NOT EXISTS `rca`.`dimension_drift` (
  `run_id` STRING,
  `baseline_share` FLOAT64,
  `included` BOOL,
  `recorded_at` DATETIME
);
CREATE TABLE IF NOT EXISTS `rca`.`dimension_frameworks` (
  `run_id` STRING,
  `baseline_share` FLOAT64,
  `included` BOOL,
  `recorded_at` DATETIME
)
