SELECT
  run_id,
  recorded_at,
  source_columns,
  dimensions
FROM `rca`.`dimension_frameworks`
WHERE
  metric = 'conversion_rate' AND run_id <> '0123456789abcdef'
ORDER BY
  recorded_at DESC
LIMIT 1
