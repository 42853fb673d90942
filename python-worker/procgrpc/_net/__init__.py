"""Network: TCP listening (TLS, plaintext rules, health-only port) and bearer-token auth."""
