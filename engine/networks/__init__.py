"""The networks of the paper (coarse CNN, refinement RNN) and their inference paths."""
