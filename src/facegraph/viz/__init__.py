"""Plots and annotated images."""
