"""The model contract: configuration, the PyTorch networks, checkpoint loading, ONNX export + manifest, tensor names."""
