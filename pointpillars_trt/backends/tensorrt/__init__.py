"""TensorRT: engine builder, engine cache (keys, sidecars) and the runner that executes engines."""
