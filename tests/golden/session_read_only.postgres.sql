SELECT
  SET_CONFIG('default_transaction_read_only', 'on', FALSE)
