"""Training loops: the mesh landmarker (and, later, the photo models)."""
