"""The daemon: wiring of store, dispatcher, connectors, HTTP API and metrics."""
