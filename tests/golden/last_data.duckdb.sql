SELECT
  MAX("session_start") AS last_time
FROM "analytics"."sessions"
WHERE
  (
    "amount" > 0
  )
