"""procgrpc: serve grpcio servicers as procgrpc worker processes."""
