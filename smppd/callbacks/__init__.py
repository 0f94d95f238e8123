"""Delivery callbacks to customers' URLs (a durable outbox drained over HTTP, signed per
Standard Webhooks) and short links with click tracking."""
