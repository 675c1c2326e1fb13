"""Side-by-side benchmarks of torchpack and torch.package; run ``python -m bench``."""
