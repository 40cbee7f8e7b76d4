SELECT
  *
FROM "analytics"."sessions"
LIMIT 0
