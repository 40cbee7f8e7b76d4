ALTER TABLE `rca`.`runs`
ADD COLUMN `error` STRING
