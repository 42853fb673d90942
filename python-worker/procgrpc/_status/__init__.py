"""Status mapping: exceptions to gRPC statuses, status-code coercion."""
