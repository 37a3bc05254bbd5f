"""Neural-network building blocks: plain ``nn.Module``s with no file I/O."""

from facegraph.nn.mobilenet_v1 import MobileNetV1

__all__ = ["MobileNetV1"]
