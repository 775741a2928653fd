"""Voice conversion: AdaIN-VC (one-shot, a speaker encoder) and the adversarial variant (learned speaker embeddings)."""
