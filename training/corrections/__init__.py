"""Learning from a user's correction polygons: the fine-tune of the correction loop."""
