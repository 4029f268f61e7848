"""From a data file to model inputs: reading CSVs, column kinds, fitting and applying preprocessing, datasets."""
