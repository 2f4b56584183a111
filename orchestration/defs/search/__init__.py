"""Search domain: the conversations index asset, its sensor, nightly rebuild and count check."""
