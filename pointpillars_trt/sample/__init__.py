"""The project's own synthetic KITTI-layout data: a ray-cast 64-beam lidar over generated street scenes."""
