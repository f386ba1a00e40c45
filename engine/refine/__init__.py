"""The refine pass: parameters, tiling, resampling, prediction, trajectories, uncertainty."""
