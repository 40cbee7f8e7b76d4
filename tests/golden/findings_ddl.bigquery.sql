CREATE SCHEMA IF NOT EXISTS `rca`;
CREATE TABLE IF NOT EXISTS `rca`.`runs` (
  `run_id` STRING,
  `rank` INT64,
  `value` FLOAT64,
  `significant` BOOL,
  `created_at` DATETIME
);
CREATE TABLE IF NOT EXISTS `rca`.`root_causes` (
  `run_id` STRING,
  `rank` INT64,
  `value` FLOAT64,
  `significant` BOOL,
  `created_at` DATETIME
)
