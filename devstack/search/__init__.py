"""Real search engines for local runs and tests, assembled from Maven Central (see launcher.py)."""
