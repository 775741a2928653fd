"""A recurrent language model of sentences: the summariser's prior, and a reference for how text reads."""
