"""procgrpc's internal services: the pipeline transport and introspection (with the generated ``_pipeline_pb2``)."""
