"""Inbound numbers: pool, MO routing by prefix, polls, auto-reply, forwarding, phonebook."""
