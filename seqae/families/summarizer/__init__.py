"""The seq2seq2seq autoencoder: a readable word sequence as the code (unsupervised summarisation)."""
