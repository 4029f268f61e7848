"""From a data file to model inputs, in layers that each import only the ones above them in this list.

- `csvfile`: reading CSVs (options, header, rows, chunks), ragged rows, which cells are missing.
- `arrowfile`: reading Parquet and Feather files with pyarrow (schema, first rows as text, batches).
- `files`: which reader a data file gets, by its suffix; where a row is, for messages; writing predictions.
- `kinds`: what each column is (numeric, categorical, date) or why it cannot be used; what a number and a date are.
- `preprocess`: the fitted `Preprocessing` and `Preprocessing.apply`, the one way raw rows become model inputs.
- `fitter`: the columns' plans and the chunk-by-chunk `Fitter` that learns a `Preprocessing`; `Prepared`.
- `cache`: the columnar cache of streamed data (preprocessed rows written once, read on later epochs).
- `stream`: files read in chunks (or from the cache), as `tf.data` pipelines.
- `prepare`: the entry point, `prepare`: data in memory, or streamed through `stream`.
- `datasets`: `Prepared` -> the `tf.data` datasets `model.fit` reads (training only).
"""
