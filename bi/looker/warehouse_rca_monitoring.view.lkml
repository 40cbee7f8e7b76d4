# warehouse-rca monitoring tables (the findings schema, default rca; change sql_table_name if yours
# differs). Every period is [start, end): bucket_end is the start of the next bucket.

view: rca_detection_series {
  sql_table_name: rca.detection_series ;;

  dimension: pk {
    primary_key: yes
    hidden: yes
    sql: ${TABLE}.metric || '|' || CAST(${TABLE}.bucket_start AS VARCHAR) ;;
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file."
  }
  dimension_group: bucket {
    type: time
    timeframes: [raw, hour, date, week, month]
    sql: ${TABLE}.bucket_start ;;
    description: "Start of the examined time bucket (the metric's grain)."
  }
  dimension: bucket_end {
    type: date_time
    sql: ${TABLE}.bucket_end ;;
    description: "Start of the next bucket: the bucket is [bucket_start, bucket_end)."
  }
  dimension: model {
    type: string
    sql: ${TABLE}.model ;;
    description: "The detector's model for the series (stl, mstl, robust_rolling, ...)."
  }
  dimension: is_anomaly {
    type: yesno
    sql: ${TABLE}.is_anomaly ;;
    description: "The detector flagged this bucket (alarms are raised once per excursion, in anomalies)."
  }
  dimension: detected_at {
    type: date_time
    sql: ${TABLE}.detected_at ;;
    description: "When the monitor run that examined the bucket wrote it."
  }
  measure: actual {
    type: sum
    sql: ${TABLE}.actual ;;
    description: "The metric's value in the bucket, from the source."
  }
  measure: expected {
    type: sum
    sql: ${TABLE}.expected ;;
    description: "The detector's expected value (seasonal profile plus level), from earlier buckets only."
  }
  measure: lower {
    type: sum
    sql: ${TABLE}.lower ;;
    description: "Lower edge of the band: below it the bucket alarms (direction and minimum change permitting)."
  }
  measure: upper {
    type: sum
    sql: ${TABLE}.upper ;;
    description: "Upper edge of the band: above it the bucket alarms (direction and minimum change permitting)."
  }
  measure: score {
    type: max
    sql: ${TABLE}.score ;;
    description: "Robust z-score of the bucket: its residual over the trailing residuals' scale."
  }
}

view: rca_anomalies {
  sql_table_name: rca.anomalies ;;

  dimension: pk {
    primary_key: yes
    hidden: yes
    sql: ${TABLE}.metric || '|' || CAST(${TABLE}.bucket_start AS VARCHAR) ;;
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file."
  }
  dimension_group: bucket {
    type: time
    timeframes: [raw, hour, date, week, month]
    sql: ${TABLE}.bucket_start ;;
    description: "First bucket of the excursion (one alarm per excursion)."
  }
  dimension: bucket_end {
    type: date_time
    sql: ${TABLE}.bucket_end ;;
    description: "End of the excursion, exclusive: the start of the bucket after its last flagged one."
  }
  dimension: peak {
    type: date_time
    sql: ${TABLE}.peak ;;
    description: "The excursion's most extreme bucket."
  }
  dimension: direction {
    type: string
    sql: ${TABLE}.direction ;;
    description: "up or down."
  }
  dimension: expected {
    type: number
    sql: ${TABLE}.expected ;;
    description: "Expected value at the peak."
  }
  dimension: actual {
    type: number
    sql: ${TABLE}.actual ;;
    description: "Actual value at the peak."
  }
  dimension: score {
    type: number
    sql: ${TABLE}.score ;;
    description: "Robust z-score at the peak."
  }
  dimension: model {
    type: string
    sql: ${TABLE}.model ;;
    description: "The detector's model for the series."
  }
  dimension: investigation_run_id {
    type: string
    sql: ${TABLE}.investigation_run_id ;;
    description: "run_id of the investigation of this anomaly in runs / root_causes (NULL: not investigated)."
  }
  dimension: detected_at {
    type: date_time
    sql: ${TABLE}.detected_at ;;
    description: "When the monitor run that found it wrote it."
  }
  measure: count {
    type: count
    description: "Number of anomalies (excursions)."
  }
}

view: rca_monitor_state {
  sql_table_name: rca.monitor_state ;;

  dimension: metric {
    primary_key: yes
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file: one row per metric."
  }
  dimension: last_bucket {
    type: date_time
    sql: ${TABLE}.last_bucket ;;
    description: "The bookmark: the newest bucket examined (never past the data); the next run starts after it."
  }
  dimension: updated_at {
    type: date_time
    sql: ${TABLE}.updated_at ;;
    description: "When the last monitor run of the metric finished."
  }
  dimension: examined_start {
    type: date_time
    sql: ${TABLE}.examined_start ;;
    description: "Start of what the last run examined, [examined_start, examined_end)."
  }
  dimension: examined_end {
    type: date_time
    sql: ${TABLE}.examined_end ;;
    description: "End (exclusive) of what the last run examined; equal to the start when there was nothing new."
  }
  dimension: last_data_bucket {
    type: date_time
    sql: ${TABLE}.last_data_bucket ;;
    description: "The newest bucket of the source that holds rows."
  }
  dimension: stale {
    type: yesno
    sql: ${TABLE}.stale ;;
    description: "The source had no data for longer than the metric's max_latency at the run's as_of."
  }
  dimension: as_of {
    type: date_time
    sql: ${TABLE}.as_of ;;
    description: "The last bucket the run was asked to examine (--as-of, default yesterday)."
  }
}
