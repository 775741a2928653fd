"""Quick-thought (Logeswaran & Lee 2018): a sentence's neighbours told from the rest of the batch."""
