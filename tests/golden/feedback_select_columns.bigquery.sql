SELECT
  `current_start`
FROM `rca`.`runs`
WHERE
  `run_id` = 'r-0001' AND `status` = 'succeeded'
