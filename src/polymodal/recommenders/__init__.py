"""Top-k recommenders as plain nn.Modules: each returns (user, item) embeddings whose dot product ranks items."""
