"""The customer portal (/portal/) and the operator's console (/ops/): pages on the API listener."""
