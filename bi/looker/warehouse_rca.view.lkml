# warehouse-rca findings for Looker. Schema `rca` (the project's findings_schema): edit
# sql_table_name if yours differs. latest_* views hold the latest succeeded run per metric.

view: rca_runs {
  sql_table_name: rca.latest_runs ;;

  dimension: run_id {
    type: string
    primary_key: yes
    sql: ${TABLE}.run_id ;;
    description: "Run key: a hash of the question asked (metric, source, periods, options); a rerun replaces its rows."
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file."
  }
  dimension: metric_kind {
    type: string
    sql: ${TABLE}.metric_kind ;;
    description: "additive or ratio."
  }
  dimension_group: baseline_start {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.baseline_start ;;
    description: "Baseline period start (inclusive)."
  }
  dimension_group: baseline_end {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.baseline_end ;;
    description: "Baseline period end (exclusive)."
  }
  dimension_group: current_start {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.current_start ;;
    description: "Current period start (inclusive); the incident date."
  }
  dimension_group: current_end {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.current_end ;;
    description: "Current period end (exclusive)."
  }
  dimension: baseline_value {
    type: number
    sql: ${TABLE}.baseline_value ;;
    description: "Metric (or segment) value over the baseline period."
  }
  dimension: current_value {
    type: number
    sql: ${TABLE}.current_value ;;
    description: "Metric (or segment) value over the current period."
  }
  dimension: change {
    type: number
    sql: ${TABLE}.change ;;
    description: "current_value - baseline_value."
  }
  dimension: relative_change {
    type: number
    sql: ${TABLE}.relative_change ;;
    description: "change / baseline_value."
  }
  dimension: p_value {
    type: number
    sql: ${TABLE}.p_value ;;
    description: "p-value of the change."
  }
  dimension: significant {
    type: yesno
    sql: ${TABLE}.significant ;;
    description: "Whether the overall change is significant."
  }
  dimension: global_change {
    type: yesno
    sql: ${TABLE}.global_change ;;
    description: "Significant, with no segment cause: every sizeable segment moved alike."
  }
  dimension: metric_format {
    type: string
    sql: ${TABLE}.metric_format ;;
    description: "The unit of every value: percent (changes in points), currency or number. Measures that add values across metrics only make sense within one unit (filter on metric)."
  }
  dimension: origin {
    type: string
    sql: ${TABLE}.origin ;;
    description: "Who asked: monitor (a detected incident) or ad_hoc (investigate, the Python API). The latest_incidents view holds each metric's latest monitor run."
  }
  dimension: n_root_causes {
    type: number
    sql: ${TABLE}.n_root_causes ;;
    description: "Number of root causes kept."
  }
  dimension: summary {
    type: string
    sql: ${TABLE}.summary ;;
    description: "One-sentence headline of the run."
  }
  dimension: status {
    type: string
    sql: ${TABLE}.status ;;
    description: "running, succeeded or failed; the latest_* views keep succeeded runs."
  }
  dimension_group: started_at {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.started_at ;;
    description: "When the attempt started (UTC)."
  }
  dimension_group: finished_at {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.finished_at ;;
    description: "When it finished (UTC)."
  }
  dimension: tool_version {
    type: string
    sql: ${TABLE}.tool_version ;;
    description: "warehouse-rca version."
  }
  dimension: parameters {
    type: string
    sql: ${TABLE}.parameters ;;
    description: "JSON of the investigation options."
  }
  dimension: attempt_id {
    type: string
    sql: ${TABLE}.attempt_id ;;
    description: "One attempt of the run."
  }
  dimension: error {
    type: string
    sql: ${TABLE}.error ;;
    description: "Error text of a failed attempt."
  }
  measure: incidents {
    type: count
  }
}

view: rca_root_causes {
  sql_table_name: rca.latest_root_causes ;;

  dimension: run_id {
    type: string
    sql: ${TABLE}.run_id ;;
    description: "Run key: a hash of the question asked (metric, source, periods, options); a rerun replaces its rows."
  }
  dimension: finding_id {
    type: string
    primary_key: yes
    sql: ${TABLE}.finding_id ;;
    description: "Stable key of a finding: hash of run_id and segment (same across reruns)."
  }
  dimension: rank {
    type: number
    sql: ${TABLE}.rank ;;
    description: "Rank within the run (1 = most important, after the knowledge-base prior)."
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file."
  }
  dimension: segment {
    type: string
    sql: ${TABLE}.segment ;;
    description: "Segment as JSON, e.g. {\"device\": \"ios\"}."
  }
  dimension: segment_label {
    type: string
    sql: ${TABLE}.segment_label ;;
    description: "Segment as text, e.g. device = ios."
  }
  dimension: dimensions {
    type: string
    sql: ${TABLE}.dimensions ;;
    description: "Comma-separated dimensions of the segment."
  }
  dimension: depth {
    type: number
    sql: ${TABLE}.depth ;;
    description: "Number of dimensions in the segment."
  }
  dimension: baseline_value {
    type: number
    sql: ${TABLE}.baseline_value ;;
    description: "Metric (or segment) value over the baseline period."
  }
  dimension: current_value {
    type: number
    sql: ${TABLE}.current_value ;;
    description: "Metric (or segment) value over the current period."
  }
  dimension: change {
    type: number
    sql: ${TABLE}.change ;;
    description: "current_value - baseline_value."
  }
  dimension: contribution {
    type: number
    sql: ${TABLE}.contribution ;;
    description: "Part of the metric's change this finding explains (metric units)."
  }
  dimension: share_of_change {
    type: number
    sql: ${TABLE}.share_of_change ;;
    description: "contribution / total change, signed: negative for a cause that offsets the change."
  }
  dimension: presence {
    type: string
    sql: ${TABLE}.presence ;;
    description: "new (no baseline rows: launched in the current period), vanished (no current rows), or null."
  }
  dimension: driver {
    type: string
    sql: ${TABLE}.driver ;;
    description: "The driver (an operational measure the metric declares, e.g. page_load_ms) that explains the cause: it moved inside the segment, not alike outside it, and its shift explains at least 20% of the segment's change under the baseline's response. Null when no driver does."
  }
  dimension: driver_baseline_mean {
    type: number
    sql: ${TABLE}.driver_baseline_mean ;;
    description: "The driver's mean inside the segment in the baseline."
  }
  dimension: driver_current_mean {
    type: number
    sql: ${TABLE}.driver_current_mean ;;
    description: "The driver's mean inside the segment in the current period."
  }
  dimension: driver_outside_baseline_mean {
    type: number
    sql: ${TABLE}.driver_outside_baseline_mean ;;
    description: "The driver's mean outside the segment in the baseline."
  }
  dimension: driver_outside_current_mean {
    type: number
    sql: ${TABLE}.driver_outside_current_mean ;;
    description: "The driver's mean outside the segment in the current period (a driver that moved alike outside explains no segment)."
  }
  dimension: driver_explained_share {
    type: number
    sql: ${TABLE}.driver_explained_share ;;
    description: "Share of the segment's change that the driver's shift explains under the baseline's response curve (1 = all of it)."
  }
  dimension: driver_counterfactual_value {
    type: number
    sql: ${TABLE}.driver_counterfactual_value ;;
    description: "The segment's current value had the driver not shifted."
  }
  dimension: driver_summary {
    type: string
    sql: ${TABLE}.driver_summary ;;
    description: "The sentence naming what drove the cause, or a driver that moved everywhere alike."
  }
  dimension: drivers {
    type: string
    sql: ${TABLE}.drivers ;;
    description: "Every driver read inside the segment, as JSON (means, intervals, explained share, localized, explains)."
  }
  dimension: effect {
    type: string
    sql: ${TABLE}.effect ;;
    description: "rate, mix or both."
  }
  dimension: rate_effect {
    type: number
    sql: ${TABLE}.rate_effect ;;
    description: "Contribution from the segment's own value changing."
  }
  dimension: mix_effect {
    type: number
    sql: ${TABLE}.mix_effect ;;
    description: "Contribution from its share changing."
  }
  dimension: baseline_support {
    type: number
    sql: ${TABLE}.baseline_support ;;
    description: "Segment volume (denominator) in the baseline."
  }
  dimension: current_support {
    type: number
    sql: ${TABLE}.current_support ;;
    description: "Segment volume in the current period."
  }
  dimension: p_value {
    type: number
    sql: ${TABLE}.p_value ;;
    description: "p-value of the change."
  }
  dimension: confidence {
    type: number
    sql: ${TABLE}.confidence ;;
    description: "0-1 confidence of the finding."
  }
  dimension: counterfactual_value {
    type: number
    sql: ${TABLE}.counterfactual_value ;;
    description: "Metric value without this cause."
  }
  dimension: counterfactual_low {
    type: number
    sql: ${TABLE}.counterfactual_low ;;
    description: "95% interval low of the counterfactual."
  }
  dimension: counterfactual_high {
    type: number
    sql: ${TABLE}.counterfactual_high ;;
    description: "95% interval high of the counterfactual."
  }
  dimension: causal_verdict {
    type: string
    sql: ${TABLE}.causal_verdict ;;
    description: "Causal validation verdict: confirmed, supported, inconclusive or demoted."
  }
  dimension: causal_score {
    type: number
    sql: ${TABLE}.causal_score ;;
    description: "Causal checks' score (multiplies the confidence)."
  }
  dimension: drilldown_confidence {
    type: number
    sql: ${TABLE}.drilldown_confidence ;;
    description: "Confidence before the causal checks."
  }
  dimension_group: change_start {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.change_start ;;
    description: "When the segment's change started."
  }
  dimension_group: aggregate_change_start {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.aggregate_change_start ;;
    description: "When the metric's change started."
  }
  dimension: ordering {
    type: string
    sql: ${TABLE}.ordering ;;
    description: "Segment change leads, coincides with or lags the metric's."
  }
  dimension: did_estimate {
    type: number
    sql: ${TABLE}.did_estimate ;;
    description: "Difference-in-differences estimate."
  }
  dimension: did_std_error {
    type: number
    sql: ${TABLE}.did_std_error ;;
    description: "Its standard error."
  }
  dimension: did_p_value {
    type: number
    sql: ${TABLE}.did_p_value ;;
    description: "Its p-value."
  }
  dimension: causal_control {
    type: string
    sql: ${TABLE}.causal_control ;;
    description: "Control used: complement or synthetic."
  }
  dimension: pre_trend_p_value {
    type: number
    sql: ${TABLE}.pre_trend_p_value ;;
    description: "Pre-trend test p-value."
  }
  dimension: parallel_trends {
    type: yesno
    sql: ${TABLE}.parallel_trends ;;
    description: "Whether pre-trends are parallel."
  }
  dimension: explained_by {
    type: string
    sql: ${TABLE}.explained_by ;;
    description: "Segment that explains this one away, if any."
  }
  dimension: causal_counterfactual_value {
    type: number
    sql: ${TABLE}.causal_counterfactual_value ;;
    description: "Causal counterfactual value."
  }
  dimension: causal_counterfactual_low {
    type: number
    sql: ${TABLE}.causal_counterfactual_low ;;
    description: "Its 95% low."
  }
  dimension: causal_counterfactual_high {
    type: number
    sql: ${TABLE}.causal_counterfactual_high ;;
    description: "Its 95% high."
  }
  dimension: causal_evidence {
    type: string
    sql: ${TABLE}.causal_evidence ;;
    description: "Full causal evidence as JSON."
  }
  dimension: narrative {
    type: string
    sql: ${TABLE}.narrative ;;
    description: "Plain-language sentence for the finding."
  }
  dimension_group: created_at {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.created_at ;;
    description: "When the row was written (UTC)."
  }
  dimension: verification_sql {
    type: string
    sql: ${TABLE}.verification_sql ;;
    description: "The query, in the warehouse's dialect, reproducing this finding's numbers from the source."
  }
  dimension: ranking_prior {
    type: number
    sql: ${TABLE}.ranking_prior ;;
    description: "Knowledge-base prior used in ranking: 3 confirmed pattern, 1/3 rejected, 1 otherwise."
  }
  dimension: knowledge {
    type: string
    sql: ${TABLE}.knowledge ;;
    description: "confirmed / rejected when analysts reviewed this segment before; null otherwise."
  }
  measure: findings {
    type: count
  }
  dimension: metric_format {
    type: string
    sql: ${TABLE}.metric_format ;;
    description: "The unit of the finding's values: percent (changes in points), currency or number. Measures that add values across metrics only make sense within one unit (filter on metric)."
  }
  measure: total_contribution {
    type: number
    sql: CASE WHEN COUNT(DISTINCT ${TABLE}.metric) = 1 THEN SUM(${contribution}) END ;;
    description: "Sum of the findings' contributions, in the metric's unit; null across metrics (points of a rate do not add to minutes of a delay)."
  }
}

view: rca_feedback {
  sql_table_name: rca.latest_feedback ;;

  dimension: feedback_id {
    type: string
    primary_key: yes
    sql: ${TABLE}.feedback_id ;;
    description: "Key of one verdict."
  }
  dimension_group: valid_until {
    type: time
    timeframes: [raw, date]
    sql: ${TABLE}.valid_until ;;
    description: "The verdict ranks incidents starting before this date only (feedback --until); null: always. A missed verdict (feedback --missed) is a cause the run did not report."
  }
  dimension: run_id {
    type: string
    sql: ${TABLE}.run_id ;;
    description: "Run key: a hash of the question asked (metric, source, periods, options); a rerun replaces its rows."
  }
  dimension: finding_id {
    type: string
    sql: ${TABLE}.finding_id ;;
    description: "Stable key of a finding: hash of run_id and segment (same across reruns)."
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name from the project file."
  }
  dimension: segment {
    type: string
    sql: ${TABLE}.segment ;;
    description: "Segment as JSON, e.g. {\"device\": \"ios\"}."
  }
  dimension: segment_label {
    type: string
    sql: ${TABLE}.segment_label ;;
    description: "Segment as text, e.g. device = ios."
  }
  dimension: verdict {
    type: string
    sql: ${TABLE}.verdict ;;
    description: "confirmed or rejected."
  }
  dimension: author {
    type: string
    sql: ${TABLE}.author ;;
    description: "Who gave the verdict."
  }
  dimension: note {
    type: string
    sql: ${TABLE}.note ;;
    description: "Why."
  }
  dimension_group: incident_start {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.incident_start ;;
    description: "Current-period start of the run the verdict is about."
  }
  dimension_group: created_at {
    type: time
    timeframes: [raw, time, date, week, month]
    sql: ${TABLE}.created_at ;;
    description: "When the row was written (UTC)."
  }
  measure: confirmations {
    type: count
    filters: [verdict: "confirmed"]
  }
  measure: rejections {
    type: count
    filters: [verdict: "rejected"]
  }
}

view: rca_knowledge_base {
  sql_table_name: rca.knowledge_base ;;

  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name."
  }
  dimension: key {
    type: string
    primary_key: yes
    hidden: yes
    sql: ${TABLE}.metric || ' ' || ${TABLE}.segment ;;
    description: "Metric and segment: the knowledge base's key."
  }
  dimension: segment {
    type: string
    sql: ${TABLE}.segment ;;
    description: "The segment as JSON (dimension -> value, sorted keys)."
  }
  dimension: segment_label {
    type: string
    sql: ${TABLE}.segment_label ;;
    description: "The segment as people read it (device = iOS, employees >= 500)."
  }
  dimension: confirmations {
    type: number
    sql: ${TABLE}.confirmations ;;
    description: "Findings of this segment an analyst confirmed (latest verdict per finding)."
  }
  dimension: rejections {
    type: number
    sql: ${TABLE}.rejections ;;
    description: "Findings of this segment an analyst rejected."
  }
  dimension: ranking_prior {
    type: number
    sql: ${TABLE}.ranking_prior ;;
    description: "How later investigations rank the segment: 3 (confirmed more often), 1/3 (rejected more often), 1."
  }
  dimension_group: last_feedback {
    type: time
    timeframes: [raw, time, date]
    sql: ${TABLE}.last_feedback_at ;;
    description: "When the latest verdict on the segment was given."
  }
  measure: segments {
    type: count
  }
}

view: rca_dimension_drift {
  sql_table_name: rca.dimension_drift ;;

  dimension: run_id {
    type: string
    sql: ${TABLE}.run_id ;;
    description: "The drift check's run (a monitor investigation or `dimensions drift`)."
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name."
  }
  dimension: kind {
    type: string
    sql: ${TABLE}.kind ;;
    description: "new_column, new_value or constant_dimension."
  }
  dimension: dimension {
    type: string
    sql: ${TABLE}.dimension ;;
    description: "The dimension (or new source column) it concerns."
  }
  dimension: value {
    type: string
    sql: ${TABLE}.value ;;
    description: "The new material value (for new_value)."
  }
  dimension: baseline_share {
    type: number
    sql: ${TABLE}.baseline_share ;;
    description: "The value's share of traffic (or of the metric) in the baseline."
  }
  dimension: current_share {
    type: number
    sql: ${TABLE}.current_share ;;
    description: "Its share in the current period."
  }
  dimension: detail {
    type: string
    sql: ${TABLE}.detail ;;
    description: "The drift in a sentence."
  }
  dimension: included {
    type: yesno
    sql: ${TABLE}.included ;;
    description: "Whether the investigation included it (--include-new)."
  }
  dimension_group: detected {
    type: time
    timeframes: [raw, time, date]
    sql: ${TABLE}.detected_at ;;
    description: "When the drift was detected."
  }
  measure: drifts {
    type: count
  }
}

view: rca_incidents {
  sql_table_name: rca.latest_incidents ;;
  # rca.open_incidents (same columns): every monitor incident without a verdict yet

  dimension: run_id {
    type: string
    primary_key: yes
    sql: ${TABLE}.run_id ;;
    description: "The incident's investigation (the monitor's run)."
  }
  dimension: metric {
    type: string
    sql: ${TABLE}.metric ;;
    description: "Metric name."
  }
  dimension_group: incident {
    type: time
    timeframes: [raw, date, week]
    sql: ${TABLE}.current_start ;;
    description: "When the incident's current period starts."
  }
  dimension: relative_change {
    type: number
    sql: ${TABLE}.relative_change ;;
    description: "Relative change of the metric (-0.19 = -19%)."
  }
  dimension: metric_format {
    type: string
    sql: ${TABLE}.metric_format ;;
    description: "The unit of the incident's values."
  }
  dimension: summary {
    type: string
    sql: ${TABLE}.summary ;;
    description: "The headline: what moved, by how much, and why."
  }
  measure: incidents {
    type: count
  }
}
