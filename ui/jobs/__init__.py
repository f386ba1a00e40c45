"""QgsTasks and the jobs they run: refine, training, trajectory, vectorize."""
