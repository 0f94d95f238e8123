"""Rate and window control: token buckets per SMSC, back-off on throttling errors."""
