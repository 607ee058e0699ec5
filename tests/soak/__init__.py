"""``make soak``: a long run of mixed traffic through real processes (tests/soak/README.md)."""
