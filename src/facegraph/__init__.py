"""facegraph: facial landmarks in photos and on 3D face scans."""

__version__ = "0.1.0"
