"""M-captioner ensemble on the host: per-proposal caption selection (SA-TSP report)."""
