SELECT
  *
FROM `rca`.`runs`
WHERE
  `metric` = 'conversion_rate' AND `status` = 'succeeded'
ORDER BY
  `current_start` DESC,
  `finished_at` DESC
LIMIT 20
