"""Example models written for torchpack's demos and tests (torchvision is not used)."""
