CREATE SCHEMA IF NOT EXISTS "shop";
CREATE OR REPLACE TABLE "shop"."sessions" AS
WITH days AS (
  SELECT
    d,
    CAST('2026-10-13' AS DATE) + CAST(d AS INT) AS day,
    CASE DAYOFWEEK(CAST('2026-10-13' AS DATE) + CAST(d AS INT))
      WHEN 0
      THEN 0.78
      WHEN 6
      THEN 0.82
      ELSE 1.0
    END AS season /* weekly seasonality: fewer sessions at the weekend */
  FROM RANGE(0, 42) AS t(d)
), rows AS (
  SELECT
    days.day,
    days.season,
    days.d * 1000000 + s.i AS rid
  FROM days, RANGE(0, CAST(72000 * days.season AS BIGINT)) AS s(i)
), u AS (
  SELECT
    day,
    season,
    rid,
    (
      HASH(rid * 7 + 1) % 1000003
    ) / 1000003.0 AS u_device,
    (
      HASH(rid * 7 + 2) % 1000003
    ) / 1000003.0 AS u_region,
    (
      HASH(rid * 7 + 3) % 1000003
    ) / 1000003.0 AS u_channel,
    (
      HASH(rid * 7 + 4) % 1000003
    ) / 1000003.0 AS u_customer,
    (
      HASH(rid * 7 + 5) % 1000003
    ) / 1000003.0 AS u_category,
    (
      HASH(rid * 7 + 6) % 1000003
    ) / 1000003.0 AS u_version,
    (
      HASH(rid * 13 + 7) % 1000003
    ) / 1000003.0 AS u_convert,
    (
      HASH(rid * 13 + 8) % 1000003
    ) / 1000003.0 AS u_amount,
    (
      HASH(rid * 13 + 9) % 1000003
    ) / 1000003.0 AS u_time,
    (
      HASH(rid * 17 + 11) % 1000003 + 1
    ) / 1000004.0 AS u_latency1,
    (
      HASH(rid * 17 + 12) % 1000003
    ) / 1000003.0 AS u_latency2
  FROM rows
), dims AS (
  SELECT
    *,
    CASE
      WHEN u_device < 0.32
      THEN 'iOS'
      WHEN u_device < 0.60
      THEN 'Android'
      WHEN u_device < 0.94
      THEN 'desktop'
      ELSE 'tablet'
    END AS device,
    CASE
      WHEN u_region < 0.20
      THEN 'Northeast'
      WHEN u_region < 0.38
      THEN 'Southeast'
      WHEN u_region < 0.54
      THEN 'Midwest'
      WHEN u_region < 0.66
      THEN 'Southwest'
      WHEN u_region < 0.84
      THEN 'West'
      WHEN u_region < 0.92
      THEN 'Northwest'
      ELSE 'Mountain'
    END AS region,
    CASE
      WHEN u_channel < (
        CASE WHEN day >= CAST('2026-11-17' AS DATE) THEN 0.26 ELSE 0.12 END
      )
      THEN 'social'
      WHEN u_channel < 0.52
      THEN 'organic'
      WHEN u_channel < 0.76
      THEN 'paid_search'
      WHEN u_channel < 0.88
      THEN 'email'
      ELSE 'referral'
    END AS channel, /* the campaign: from 2026-11-17 a larger share of sessions arrives from social */
    CASE WHEN u_customer < 0.62 THEN 'new' ELSE 'returning' END AS customer_type,
    CASE
      WHEN u_category < 0.25
      THEN 'electronics'
      WHEN u_category < 0.50
      THEN 'apparel'
      WHEN u_category < 0.70
      THEN 'home'
      WHEN u_category < 0.85
      THEN 'beauty'
      ELSE 'sports'
    END AS product_category
  FROM u
), versions AS (
  SELECT
    *,
    CASE
      WHEN device = 'iOS'
      THEN CASE
        WHEN day >= CAST('2026-10-27' AS DATE) AND u_version < 0.6
        THEN '5.2'
        ELSE '5.1'
      END
      WHEN device = 'Android'
      THEN CASE WHEN u_version < 0.55 THEN '8.4' ELSE '8.3' END
      ELSE 'web'
    END AS app_version
  FROM dims
), latency AS (
  SELECT
    *,
    800 /* log-normal around 0.8 s (Box-Muller), four times slower in iOS 5.2 after the push */ * EXP(0.3 * SQRT(-2 * LN(u_latency1)) * COS(2 * PI() * u_latency2)) * CASE
      WHEN app_version = '5.2' AND day >= CAST('2026-11-18' AS DATE)
      THEN 4.0
      ELSE 1.0
    END AS latency_ms
  FROM versions
), rates AS (
  SELECT
    *,
    0.034 * CASE device
      WHEN 'desktop'
      THEN 1.25
      WHEN 'iOS'
      THEN 1.05
      WHEN 'Android'
      THEN 0.8
      ELSE 0.9
    END * CASE customer_type WHEN 'returning' THEN 1.55 ELSE 0.75 END * CASE channel
      WHEN 'email'
      THEN 1.8
      WHEN 'social'
      THEN 0.45
      WHEN 'paid_search'
      THEN 0.95
      WHEN 'referral'
      THEN 1.1
      ELSE 1.0
    END * CASE product_category WHEN 'electronics' THEN 0.8 WHEN 'beauty' THEN 1.2 ELSE 1.0 END * (
      2.0 - season
    ) * EXP(-0.437 * (
      latency_ms / 1000.0 - 0.8
    )) AS p_convert /* conversion falls with checkout latency (the incident's mechanism: 0.8 s -> 3.2 s is x0.35) */
  FROM latency
)
SELECT
  CAST(rid AS BIGINT) AS session_id,
  CAST(day AS TIMESTAMP) + TO_SECONDS(CAST(FLOOR(u_time * 86400) AS BIGINT)) AS session_start,
  device,
  app_version,
  region,
  channel,
  customer_type,
  product_category,
  CAST(ROUND(latency_ms) AS INT) AS checkout_latency_ms,
  CASE WHEN u_convert < p_convert THEN 1 ELSE 0 END AS converted,
  CASE
    WHEN u_convert < p_convert
    THEN ROUND(
      (
        25 + 160 * u_amount
      ) * CASE product_category WHEN 'electronics' THEN 2.2 ELSE 1.0 END,
      2
    )
    ELSE 0
  END AS revenue
FROM rates
