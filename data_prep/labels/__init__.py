"""Per-video TSP-style label tables and per-clip targets."""
