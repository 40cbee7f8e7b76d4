SELECT
  MAX(last_bucket) AS last_bucket
FROM `rca`.`monitor_state`
WHERE
  metric = 'conversion_rate'
