"""The HTTP API (JSON), /metrics, /healthz and /readyz."""
