"""Forensic features computed from an image's pixels or file: ELA, SRM residuals, WLD texture
histograms, SIFT copy-move evidence and the JPEG quality of a file's quantisation tables."""
