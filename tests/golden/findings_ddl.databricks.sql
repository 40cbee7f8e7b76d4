CREATE SCHEMA IF NOT EXISTS `rca`;
CREATE TABLE IF NOT EXISTS `rca`.`runs` (
  `run_id` STRING,
  `rank` INT,
  `value` DOUBLE,
  `significant` BOOLEAN,
  `created_at` TIMESTAMP_NTZ
);
CREATE TABLE IF NOT EXISTS `rca`.`root_causes` (
  `run_id` STRING,
  `rank` INT,
  `value` DOUBLE,
  `significant` BOOLEAN,
  `created_at` TIMESTAMP_NTZ
)
