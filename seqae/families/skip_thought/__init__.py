"""Skip-thought (Kiros et al. 2015): an encoder whose vector two decoders turn into the neighbouring sentences."""
