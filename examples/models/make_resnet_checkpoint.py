"""Build step: write the ResNet-18 checkpoint (deterministic random weights, seed 0).

Usage: ``python -m examples.models.make_resnet_checkpoint OUT``.
"""

import sys

import torch

from examples.models.resnet import resnet18

if __name__ == "__main__":
    torch.save(resnet18(seed=0).state_dict(), sys.argv[1])
