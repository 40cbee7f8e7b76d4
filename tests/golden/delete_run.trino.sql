DELETE FROM "rca"."root_causes"
WHERE
  run_id = 'r-0001'
