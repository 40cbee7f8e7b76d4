UPDATE `rca`.`runs` SET status = 'failed', finished_at = CAST('2026-11-24 06:00:00' AS TIMESTAMP_NTZ), error = 'it\'s broken'
WHERE
  run_id = 'r-0001' AND attempt_id = 'a-0001'
