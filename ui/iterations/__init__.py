"""The iterations dock: the map at every RNN iteration, uncertainty layers."""
