"""Reports: history explained, report queries and renderers, queued/periodic/e-mailed runs."""
