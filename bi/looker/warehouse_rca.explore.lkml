# Include from your model: include: "/bi/looker/warehouse_rca.view.lkml"
# One row per finding of the latest succeeded run per metric, with its run and the latest verdict.
# For every run (history), point the views' sql_table_name at rca.runs / rca.root_causes instead
# (then filter runs on status = 'succeeded').
explore: rca_root_causes {
  label: "Root causes (warehouse-rca)"
  description: "Why metrics moved: one row per finding, ranked, with evidence and verification SQL."
  join: rca_runs {
    type: left_outer
    relationship: many_to_one
    sql_on: ${rca_root_causes.run_id} = ${rca_runs.run_id} ;;
  }
  join: rca_feedback {
    type: left_outer
    relationship: one_to_one
    sql_on: ${rca_root_causes.run_id} = ${rca_feedback.run_id}
        AND ${rca_root_causes.finding_id} = ${rca_feedback.finding_id} ;;
  }
}

# Include from your model: include: "/bi/looker/warehouse_rca_monitoring.view.lkml"
# Actual vs the detector's band for every examined bucket, with the alarms raised on it.
explore: rca_detection_series {
  label: "Metric monitoring (warehouse-rca)"
  description: "Each metric's actual value, expected value and alarm band per bucket, and its anomalies."
  join: rca_anomalies {
    type: left_outer
    relationship: one_to_one
    sql_on: ${rca_detection_series.metric} = ${rca_anomalies.metric}
        AND ${rca_detection_series.bucket_raw} = ${rca_anomalies.bucket_raw} ;;
  }
  join: rca_monitor_state {
    type: left_outer
    relationship: many_to_one
    sql_on: ${rca_detection_series.metric} = ${rca_monitor_state.metric} ;;
  }
}

# The latest detected incident per metric (rca.latest_incidents; point sql_table_name at
# rca.open_incidents for the ones no analyst has given a verdict on yet), with its findings.
explore: rca_incidents {
  label: "Incidents (warehouse-rca)"
  description: "Each metric's latest incident the monitor detected, with its root causes."
  join: rca_root_causes {
    type: left_outer
    relationship: one_to_many
    sql_on: ${rca_incidents.run_id} = ${rca_root_causes.run_id} ;;
  }
}

# What analysts confirmed and rejected, per metric and segment.
explore: rca_knowledge_base {
  label: "Knowledge base (warehouse-rca)"
  description: "Confirmations and rejections per metric and segment, and the ranking prior they give."
}

# New values, new columns and constant dimensions the monitor's investigations found.
explore: rca_dimension_drift {
  label: "Dimension drift (warehouse-rca)"
  description: "How the dimensional framework drifted: new material values, new columns, constants."
}
