"""serving: TensorFlow Serving configs, gRPC/REST clients and a development test server."""
