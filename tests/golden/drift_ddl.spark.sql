CREATE SCHEMA IF NOT EXISTS `rca`;
CREATE TABLE IF NOT EXISTS `rca`.`dimension_drift` (
  `run_id` STRING,
  `baseline_share` DOUBLE,
  `included` BOOLEAN,
  `recorded_at` TIMESTAMP_NTZ
)
PARTITIONED BY (
  `run_id`
);
CREATE TABLE IF NOT EXISTS `rca`.`dimension_frameworks` (
  `run_id` STRING,
  `baseline_share` DOUBLE,
  `included` BOOLEAN,
  `recorded_at` TIMESTAMP_NTZ
)
PARTITIONED BY (
  `run_id`
)
