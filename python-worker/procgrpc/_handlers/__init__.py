"""Handler adapters: the servicer contexts, the per-call scope, in-flight bookkeeping."""
