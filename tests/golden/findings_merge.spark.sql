INSERT INTO `rca`.`root_causes` (
  `run_id`,
  `rank`,
  `value`,
  `significant`,
  `created_at`
)
SELECT
  `run_id`,
  `rank`,
  `value`,
  `significant`,
  `created_at`
FROM `rca_stage_0123abcd`
