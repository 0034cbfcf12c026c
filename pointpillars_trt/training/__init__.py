"""Training PointPillars on the project's synthetic scenes (OpenPCDet's recipe for pointpillar.yaml).

targets: anchor target assignment + ResidualCoder encode; losses: focal / smooth-L1 / direction;
augment: global flip, rotation, scaling; data: seeded generated frames -> voxelized, assigned batches;
trainer: the loop (one-cycle Adam, checkpoints in OpenPCDet's format, resume).
"""
