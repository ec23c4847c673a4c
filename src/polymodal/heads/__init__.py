"""Task heads: plain ``nn.Module``s that receive dimensions and map fused features to scores."""
