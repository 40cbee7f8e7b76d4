SELECT
  COALESCE(CAST(`region` AS STRING), '(null)') AS h0,
  COALESCE(CAST(`city` AS STRING), '(null)') AS h1,
  COUNT(*) AS n
FROM `analytics`.`sessions`
WHERE
  COALESCE(CAST(`city` AS STRING), '(null)') IN ('Lyon', 'it\'s')
  AND (
    `amount` > 0
    AND (
      CAST((
        `converted`
      ) AS DOUBLE) - CAST((
        `converted`
      ) AS DOUBLE) = 0
      OR `converted` IS NULL
    )
  )
GROUP BY
  COALESCE(CAST(`region` AS STRING), '(null)'),
  COALESCE(CAST(`city` AS STRING), '(null)')
