"""Scores: confusion matrix, accuracy and IoU of arrays and of rasters."""
