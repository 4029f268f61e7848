"""Fitting a model: datasets and callbacks in, a run outcome and its summary out."""
