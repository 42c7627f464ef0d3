"""Readers of few-shot image data sets in their published layouts."""
