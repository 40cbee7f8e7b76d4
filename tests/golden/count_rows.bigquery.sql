SELECT
  COUNT(*) AS n
FROM `rca`.`runs`
