"""Evaluation harness: datasets x models x metrics, producing the reports the CLI prints and saves."""
