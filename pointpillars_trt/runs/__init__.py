"""Runs over many scans, above the API: a folder in one process at the GPU's pace (folder), or over a Ray cluster
(ray_run); both plan with io.result_files (skip finished results, write files whole) and build detectors from a
DetectorSpec. scan_links makes a folder of a data set's size from a few scans, to measure and test them."""
