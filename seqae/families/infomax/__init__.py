"""Deep InfoMax: codes judged, and trained, by discriminators of (input, code) pairs."""
