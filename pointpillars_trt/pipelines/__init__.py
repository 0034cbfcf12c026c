"""The pipelines that chain the stages: CPU, GPU (device buffers, one stream), their factory and timing."""
