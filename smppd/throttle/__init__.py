"""Rate and window policy: token buckets, the adaptive rate a throttling SMSC
imposes, fair turns between jobs and single messages, and the one back-off."""
