"""Files in and out: KITTI scans, calibration, labels and results; the Detections record."""
