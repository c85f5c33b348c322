"""needle's ResNet9 (dlsyscourse hw4) in PyTorch, with @needle/nn's module names (model.0.conv.weight,
...), so state dicts map one to one. Shared by the fixture generators here and apps/bench's torch worker."""
import torch.nn as nn


class ConvBN(nn.Module):
    """Conv2d (padding k // 2), BatchNorm2d, ReLU, as @needle/nn's ConvBN."""

    def __init__(self, a, b, k, s):
        super().__init__()
        self.conv = nn.Conv2d(a, b, k, stride=s, padding=k // 2)
        self.bn = nn.BatchNorm2d(b)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class ResNet9(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            ConvBN(3, 16, 7, 4), ConvBN(16, 32, 3, 2),
            Residual(nn.Sequential(ConvBN(32, 32, 3, 1), ConvBN(32, 32, 3, 1))),
            ConvBN(32, 64, 3, 2), ConvBN(64, 128, 3, 2),
            Residual(nn.Sequential(ConvBN(128, 128, 3, 1), ConvBN(128, 128, 3, 1))),
            nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.model(x)
